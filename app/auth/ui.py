"""Sign in and out of the web UI (per tenant, CSRF-protected forms)."""

from __future__ import annotations

from flask import Blueprint, Flask, abort, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Email, Length

from app.extensions import db
from app.people.passwords import check_password
from app.people.services import user_by_email
from tenants import current_tenant_or_none

bp = Blueprint("auth", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


class LoginForm(FlaskForm):
    email = EmailField("email", validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField("password", validators=[DataRequired(), Length(max=256)])


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the sign-in form; on success start a session bound to this tenant."""
    tenant = current_tenant_or_none()
    if tenant is None:
        abort(404)
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        user = user_by_email(form.email.data)
        if user is not None and check_password(user.password_hash, form.password.data):
            session.clear()
            session["tenant"] = tenant.slug
            login_user(user)
            target = request.args.get("next", "")
            return redirect(target if target.startswith("/") and not target.startswith("//")
                            else url_for("ui.index"))
        error = "Wrong email or password."
    status = 401 if error else 200
    return render_template("auth/login.html", form=form, error=error), status


@bp.route("/logout", methods=["GET", "POST"])
@login_required
def logout():
    """End the session everywhere: bump the user's session version, so old cookies are refused."""
    if request.method == "POST":
        current_user.session_version += 1
        db.session.commit()
        logout_user()
        session.clear()
        return redirect(url_for("auth.login"))
    return render_template("auth/logout.html", form=FlaskForm())
