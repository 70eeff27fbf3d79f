"""The agent console's queues: which open tickets each holds, and every queue's count in one query.

A queue is a scope over the ticket list, so it pages, sorts and searches (`q`) exactly as
`GET /api/v1/tickets` does. "Open" means not yet resolved: `new`, `open` or `pending`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from app.auth.actor import Actor
from app.errors import Forbidden, Invalid
from app.extensions import db
from app.people.models import TeamMember
from app.tickets.listing import TicketPage, list_tickets
from app.tickets.models import OPEN_STATUSES, Ticket
from app.tickets.schemas import RELEVANCE

# name -> what the tab says
QUEUES = {"mine": "Mine", "team": "My teams", "unassigned": "Unassigned", "open": "All open"}
DEFAULT_QUEUE = "mine"


def queue_scope(actor: Actor, name: str) -> list[sa.ColumnElement[bool]]:
    """Return the conditions of a queue for `actor`."""
    scope: list[sa.ColumnElement[bool]] = [Ticket.status.in_(OPEN_STATUSES)]
    if name == "mine":
        scope.append(Ticket.assignee_id == actor.user_id)
    elif name == "team":
        scope.append(Ticket.team_id.in_(sa.select(TeamMember.team_id).where(TeamMember.user_id == actor.user_id)))
    elif name == "unassigned":
        scope.append(Ticket.assignee_id.is_(None))
    return scope


def _staff(actor: Actor) -> None:
    if not actor.is_staff:
        raise Forbidden("Queues are for agents and admins.")


def queue_counts(actor: Actor) -> dict[str, int]:
    """Return how many open tickets each queue holds for `actor`, in one query."""
    _staff(actor)
    return dict(db.session.execute(counts_select(actor)).one()._mapping)


def counts_select(actor: Actor) -> sa.Select:
    """Return the one query of `queue_counts`, read from `ix_tickets_open` alone (it holds the team too)."""
    counts = [sa.func.count().filter(sa.and_(*queue_scope(actor, name)[1:], sa.true())).label(name)
              for name in QUEUES]
    return sa.select(*counts).where(Ticket.status.in_(OPEN_STATUSES))


def list_queue(actor: Actor, name: str, args: dict[str, Any], timeout_ms: int) -> TicketPage:
    """Return one page of a queue, filtered, sorted and searched like the ticket list."""
    _staff(actor)
    if name not in QUEUES:
        raise Invalid.field("queue", f"Must be one of: {', '.join(QUEUES)}.", "There is no such queue.")
    return list_tickets(db.session, actor, args, timeout_ms, scope=queue_scope(actor, name), search_sort=RELEVANCE)
