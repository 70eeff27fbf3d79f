"""People pages: an agent's own availability, switched from the navigation bar."""

from __future__ import annotations

from flask import Blueprint, Flask, flash, redirect, request, url_for
from flask_login import login_required

from app.auth.actor import current_actor
from app.auth.ui import safe_next
from app.extensions import db
from app.people.schemas import UserPatchSchema
from app.people.services import change_user
from app.ui.pages import read_form, refusals

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
