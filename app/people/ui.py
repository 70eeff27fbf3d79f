"""People's own pages: an agent's availability, switched from the navigation bar, and anyone's password."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user
from flask_wtf import FlaskForm

from app.auth import throttle
from app.auth.actor import current_actor
from app.auth.ui import safe_next
from app.errors import Invalid
from app.extensions import db
from app.people.models import User
from app.people.passwords import check_password
from app.people.schemas import UserPatchSchema
from app.people.services import change_user
from app.ui.pages import Refusal, read_form, refusals
from tenants import current_tenant

bp = Blueprint("people_ui", __name__)
CHANGES = UserPatchSchema()


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.post("/me/availability")
@login_required
def availability():
    """Set whether auto-assignment may hand me tickets (`available`); waiting tickets drain when I return."""
    actor = current_actor()
    with refusals() as refused:
        fields = read_form(CHANGES, only=("available",), checkboxes=("available",))
        user = change_user(actor, actor.user_id, fields)
        available = user.available
        db.session.commit()
        flash("You are available: new tickets may be assigned to you." if available
              else "You are away: no new tickets are assigned to you.", "success")
    if refused:
        flash(refused.refusal.message, "error")
    return redirect(safe_next(request.form.get("next", "")) or url_for("ui.index"))


def _held(signed_in: User) -> User | None:
    """Lock the signed-in person's row and read it afresh, or None if their session has ended since the
    request began. The password they give is checked against the hash that the change replaces: an
    admin's reset that landed in between was overwritten, and whoever held the old password stayed in.
    """
    version = signed_in.session_version
    me = db.session.get(User, signed_in.id, with_for_update=True, populate_existing=True)
    return None if me is None or me.deleted_at is not None or me.session_version != version else me


@bp.route("/me/password", methods=["GET", "POST"])
@login_required
def password():
    """Change my own password, given the one I have: it signs me out everywhere but here.

    A person an admin gave a password to (agents and requesters sign in with one, and hold no API
    key unless given one) had no way to make it their own. Wrong guesses count as failed sign-ins.
    """
    form, refusal, headers = FlaskForm(), None, {}
    if request.method == "POST" and form.validate_on_submit():
        actor, tenant, wait = current_actor(), current_tenant(), None
        with refusals() as refused:
            fields = read_form(CHANGES, only=("password",))  # a mistyped new one is no guess at the current
            if "password" not in fields:
                raise Invalid("Please fix the fields marked below.", {"password": ["This is required."]})
            wait = throttle.login_attempt(tenant, current_user.email)
            if wait is None:
                me = _held(current_user)
                if me is None:  # signed out everywhere meanwhile: an admin's reset, a sign-out elsewhere
                    return current_app.login_manager.unauthorized()
                if not check_password(me.password_hash, request.form.get("current_password", "")):
                    raise Invalid("Please fix the fields marked below.",
                                  {"current_password": ["This is not your password."]})
                throttle.login_succeeded(tenant, me.email)
                user = change_user(actor, actor.user_id, fields)
                login_user(user)  # this browser's session, at the version this change set (read under the lock)
                db.session.commit()
                flash("Your password is changed. Everywhere else, you are signed out.", "success")
                return redirect(url_for("ui.index"))
        refusal = refused.refusal
        if refusal is None and wait is not None:
            refusal = Refusal(429, f"Too many wrong passwords. Try again in {wait.in_words}.")
            headers["Retry-After"] = str(wait.retry_after)
    page = render_template("people/password.html", form=form, refused=refusal)
    return make_response(page, refusal.status if refusal else 200, headers)
