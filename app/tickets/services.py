"""Ticket operations shared by the API, the UI, the sockets and the jobs."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from flask_smorest import abort

from app import audit
from app.auth.actor import Actor
from app.extensions import db
from app.outbox import emit
from app.people.models import User
from app.tickets.models import Counter, Ticket

SNAPSHOT_FIELDS = ("title", "description", "priority", "status", "category", "tags", "assignee_id", "team_id",
                   "resolution")


def next_ticket_number() -> int:
    """Take the next ticket number; the counter row stays locked until commit, so no gaps."""
    return db.session.execute(
        sa.update(Counter).where(Counter.name == "ticket_number").values(value=Counter.value + 1)
        .returning(Counter.value)
    ).scalar_one()


def snapshot(ticket: Ticket) -> dict[str, Any]:
    return {f: getattr(ticket, f) for f in SNAPSHOT_FIELDS}


def create_ticket(actor: Actor, title: str, description: str = "", priority: str = "normal",
                  category: str | None = None, tags: list[str] | None = None,
                  requester_id: uuid.UUID | None = None) -> Ticket:
    """Open a ticket for `requester_id` (default: the actor); assignment follows in the background."""
    if requester_id is None or not actor.is_staff:
        requester_id = actor.user_id
    elif db.session.get(User, requester_id) is None:
        abort(422, message="No such requester.", errors={"requester_id": ["No such user."]})
    ticket = Ticket(id=uuid.uuid4(), number=next_ticket_number(), title=title, description=description or "",
                    priority=priority, category=category, tags=sorted(set(tags or [])),
                    requester_id=requester_id, status="new")
    db.session.add(ticket)
    audit.record("ticket", ticket.id, "created", after=snapshot(ticket))
    emit("ticket.created", {"ticket_id": str(ticket.id)})
    return ticket


def visible_tickets(actor: Actor) -> sa.Select:
    """Return a select of the tickets `actor` may see: requesters see only their own."""
    stmt = sa.select(Ticket)
    if not actor.is_staff:
        stmt = stmt.where(Ticket.requester_id == actor.user_id)
    return stmt


def ticket_for(actor: Actor, ticket_id: uuid.UUID, lock: bool = False) -> Ticket:
    """Return a ticket `actor` may see, or answer 404 (never 403: existence is not disclosed)."""
    stmt = visible_tickets(actor).where(Ticket.id == ticket_id)
    if lock:
        stmt = stmt.with_for_update()
    ticket = db.session.execute(stmt).scalar_one_or_none()
    if ticket is None:
        abort(404, message="No such ticket.")
    return ticket
