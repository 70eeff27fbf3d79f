"""Tenant home page: requesters see their tickets, agents their queue."""

from __future__ import annotations

from flask import Blueprint, Flask, render_template
from flask_login import login_required

from app.auth.actor import current_actor
from app.tickets.services import home_tickets
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
    """List the signed-in user's tickets (requesters) or open queue (agents and admins)."""
    return render_template("ui/home.html", tickets=home_tickets(current_actor()))
