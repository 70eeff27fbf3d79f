"""Outbox handlers: assignment runs in RQ workers on the `assignment` queue, never in a request.

Each handler runs inside the worker's app and tenant context, in the transaction that marks its
outbox row processed, so a retried or redelivered row never assigns a ticket twice. Each also
offers `run_batch` (see `app.worker`): under a burst, one job assigns many new tickets with one
set of locks, and many queued drain events collapse into one drain.
"""

from __future__ import annotations

import uuid
from typing import Any

from app.assignment import services
from app.outbox import subscribe

QUEUE = "assignment"


def _drain_once(payloads: list[dict[str, Any]]) -> None:
    services.drain()


@subscribe("ticket.created", queue=QUEUE)
def assign_created_ticket(payload: dict[str, Any]) -> None:
    """Route and assign a new ticket."""
    services.assign_new_ticket(uuid.UUID(payload["ticket_id"]))


def assign_created_tickets(payloads: list[dict[str, Any]]) -> None:
    """Route and assign many new tickets in one transaction."""
    services.assign_new_tickets([uuid.UUID(p["ticket_id"]) for p in payloads])


assign_created_ticket.run_batch = assign_created_tickets


@subscribe("ticket.closed", queue=QUEUE)
def drain_after_close(payload: dict[str, Any]) -> None:
    """A closed ticket frees its agent's capacity: hand out queued tickets."""
    services.drain()


@subscribe("agent.changed", queue=QUEUE)
def drain_after_agent_change(payload: dict[str, Any]) -> None:
    """An agent became available, gained capacity or skills, or joined a team: drain the queue."""
    services.drain()


@subscribe(services.RULES_CHANGED, queue=QUEUE)
def drain_after_rules_change(payload: dict[str, Any]) -> None:
    """Rules changed: re-route queued tickets and hand out what can be."""
    services.drain()


@subscribe(services.QUEUE_CHANGED, queue=QUEUE)
def drain_after_manual_change(payload: dict[str, Any]) -> None:
    """A ticket was taken from an agent or put back in the queue by hand: drain the queue."""
    services.drain()


@subscribe("ticket.updated", queue=QUEUE)
def drain_after_update(payload: dict[str, Any]) -> None:
    """An update may free capacity (resolved, pending -> resolved, reassigned): drain the queue."""
    services.drain()


for _drain_handler in (drain_after_close, drain_after_agent_change, drain_after_rules_change,
                       drain_after_manual_change, drain_after_update):
    _drain_handler.run_batch = _drain_once
