"""Sign in and out of the web UI (per tenant, CSRF-protected forms, throttled sign-in)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from flask_smorest import abort as smorest_abort
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from app.auth import key_cache, ratelimit, throttle
from app.extensions import db, is_api_request
from app.people.services import authenticate, sign_out_everywhere
from tenants import current_tenant_or_none

bp = Blueprint("auth", __name__)
_URL_WHITESPACE = re.compile(r"[\t\n\r]")
_ENCODED_DOT = re.compile("%2e", re.IGNORECASE)
DEVICE_COOKIE_DAYS = 365


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(limit_page_writes)


def limit_page_writes() -> None:
    """Count a signed-in person's page write (any POST but signing out) against their rate limit; over it, 429."""
    if request.method != "POST" or request.endpoint == "auth.logout" or is_api_request() \
            or not current_user.is_authenticated:
        return
    tenant = current_tenant_or_none()
    limit = ratelimit.hit_user(tenant.id, str(current_user.id)) if tenant is not None else None
    if limit is not None and limit.exceeded:
        smorest_abort(429, message="You are sending too much at once; wait a minute and try again.",
                      headers=limit.headers())


def _text(value: object) -> str | None:
    """Keep a field's value only if it is text: Flask-WTF also reads a JSON body, whose 12345 or list broke
    the length check with a 500."""
    return value if isinstance(value, str) else None


class LoginForm(FlaskForm):
    # Any address the API may have given someone (no format check of the form's own: one refused
    # `ops@localhost`, which the API takes, so its person could never sign in); unknown ones just fail.
    email = EmailField("email", validators=[DataRequired(), Length(max=254)], filters=[_text])
    password = PasswordField("password", validators=[DataRequired(), Length(max=256)], filters=[_text])


def safe_next(target: str) -> str | None:
    """Return `target` as a path on this host and tenant, read the way a browser reads it, or None.

    Browsers drop tabs and newlines inside URLs, trim leading control characters and spaces, and
    take `\\` for `/`; so `/\\t/evil.example` is `//evil.example`, another host. They also resolve
    `.` and `..` segments (`%2e` spelt or not), so `/t/<slug>/../../elsewhere` leaves the tenant.
    Anything with a scheme or a host, anything that is not a URL, or outside this tenant's
    pages once resolved, is refused.
    """
    cleaned = _URL_WHITESPACE.sub("", target).lstrip("".join(map(chr, range(0x21)))).replace("\\", "/")
    if any(ord(c) < 0x20 or c == "\x7f" for c in cleaned):
        return None
    try:
        parts = urlsplit(cleaned)
    except ValueError:  # e.g. `//[evil`: not a URL a browser would follow to this host either
        return None
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return None
    path = _without_dot_segments(_ENCODED_DOT.sub(".", parts.path))
    if path.startswith("//"):
        return None
    root = request.script_root
    if root and path != root and not path.startswith(root + "/"):
        return None
    return urlunsplit(("", "", path, parts.query, ""))


def _without_dot_segments(path: str) -> str:
    """Resolve `.` and `..` in an absolute path as RFC 3986 (and every browser) does."""
    segments = path.split("/")[1:]
    kept: list[str] = []
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment in (".", ".."):
            if segment == ".." and kept:
                kept.pop()
            if last:
                kept.append("")
            continue
        kept.append(segment)
    return "/" + "/".join(kept)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the sign-in form; on success start a session bound to this tenant."""
    tenant = current_tenant_or_none()
    if tenant is None:
        abort(404)
    form = LoginForm()
    error, status, retry_after = None, 200, None
    if form.validate_on_submit():
        wait = throttle.login_attempt(tenant, form.email.data)
        if wait is not None:
            error = (f"Too many failed sign-ins. Try again in {wait.in_words}, or ask an admin of your "
                     "organization to set a new password.")
            status, retry_after = 429, wait.retry_after
        elif (user := authenticate(form.email.data, form.password.data)) is not None:
            session.clear()
            session["tenant"] = tenant.slug
            # Before the commit expires it: the session carries the version read with the hash just
            # checked, so a reset landing meanwhile signs this session out too.
            login_user(user)
            db.session.commit()  # a password hash may have been brought up to date
            response = redirect(safe_next(request.args.get("next", "")) or url_for("ui.index"))
            response.set_cookie(throttle.DEVICE_COOKIE, throttle.login_succeeded(tenant, form.email.data),
                                max_age=DEVICE_COOKIE_DAYS * 86400, httponly=True, samesite="Lax",
                                secure=current_app.config["SESSION_COOKIE_SECURE"] or request.is_secure,
                                path=request.script_root or "/")
            return response
        else:  # the attempt was counted as a failure before the password was checked
            error, status = "Wrong email or password.", 401
    elif form.is_submitted():
        status = 422  # a field missing or too long, told beside it: as the signup and password pages answer
    response = make_response(render_template("auth/login.html", form=form, error=error), status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@bp.route("/logout", methods=["GET", "POST"])
@login_required
def logout():
    """End the session everywhere: bump the user's session version, so old cookies are refused.

    Open ticket sockets re-check their grant, which carries the session version, at once.
    """
    if request.method == "POST":
        sign_out_everywhere(current_user)
        key_cache.change_on_commit()
        db.session.commit()
        logout_user()
        session.clear()
        return redirect(url_for("auth.login"))
    return render_template("auth/logout.html", form=FlaskForm())
