"""The signup page: the same rules as `POST /api/v1/signup`."""

from __future__ import annotations

from flask import Blueprint, Flask, make_response, redirect, render_template
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, Length, ValidationError

from app.auth.throttle import signup_wait
from app.schemas import name_problem
from app.signup.services import sign_up
from tenants import SlugTaken, slug_problem

bp = Blueprint("signup", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _valid_slug(_form: FlaskForm, field: StringField) -> None:
    problem = slug_problem(field.data or "")
    if problem:
        raise ValidationError(problem)


def _visible_name(_form: FlaskForm, field: StringField) -> None:
    problem = name_problem(field.data or "")
    if problem:
        raise ValidationError(problem)


class SignupForm(FlaskForm):
    name = StringField("name", validators=[DataRequired(), Length(max=200), _visible_name])
    slug = StringField("slug", validators=[DataRequired(), _valid_slug])
    admin_email = EmailField("admin_email", validators=[DataRequired(), Email(), Length(max=254)])
    admin_password = PasswordField("admin_password", validators=[DataRequired(), Length(min=8, max=256)])


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    """Create an organization, then send its admin to sign in."""
    form = SignupForm()
    if form.validate_on_submit():
        wait = signup_wait()
        if wait is not None:
            error = "Too many organizations were created from your address; try again in an hour."
            response = make_response(render_template("signup/signup.html", form=form, error=error), 429)
            response.headers["Retry-After"] = str(wait.retry_after)
            return response
        try:
            sign_up(name=form.name.data, slug=form.slug.data, admin_email=form.admin_email.data,
                    admin_password=form.admin_password.data)
        except SlugTaken:
            form.slug.errors = ["This slug is taken."]
            return render_template("signup/signup.html", form=form), 409
        return redirect(f"/t/{form.slug.data}/login")
    return render_template("signup/signup.html", form=form), 422 if form.errors else 200
