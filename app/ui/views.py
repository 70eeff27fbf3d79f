"""The root of a tenant's pages: requesters see their tickets, agents and admins their queues."""

from __future__ import annotations

from flask import Blueprint, Flask, render_template
from flask_login import login_required

from app.auth.actor import current_actor
from app.tickets import ui as tickets_ui
from tenants import current_tenant_or_none

bp = Blueprint("ui", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/")
def index():
    """Show the tenant's home page, or the product's landing page on the bare host."""
    if current_tenant_or_none() is None:
        return render_template("landing.html")
    return home()


@login_required
def home():
    """Show the signed-in user's home: their queues (staff) or their own tickets (requesters)."""
    return tickets_ui.home(current_actor())
