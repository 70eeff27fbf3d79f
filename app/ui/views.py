"""Tenant home page: requesters see their tickets, agents their queue."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Flask, render_template
from flask_login import current_user, login_required

from app.extensions import db
from app.tickets.models import OPEN_STATUSES, Ticket
from tenants.context import current_tenant_or_none

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
    stmt = sa.select(Ticket).order_by(Ticket.created_at.desc()).limit(50)
    if current_user.role == "requester":
        stmt = stmt.where(Ticket.requester_id == current_user.id)
    else:
        stmt = stmt.where(Ticket.status.in_(OPEN_STATUSES),
                          sa.or_(Ticket.assignee_id == current_user.id, Ticket.assignee_id.is_(None)))
    tickets = db.session.execute(stmt).scalars().all()
    return render_template("ui/home.html", tickets=tickets)
