"""Outbox handlers: assignment runs in RQ workers on the `assignment` queue, never in a request.

Each handler runs inside the worker's app and tenant context, in the transaction that marks its
outbox row processed, so a retried or redelivered row never assigns a ticket twice.
"""

from __future__ import annotations

import uuid
from typing import Any

from app.assignment import services
from app.outbox import subscribe

QUEUE = "assignment"


@subscribe("ticket.created", queue=QUEUE)
def assign_created_ticket(payload: dict[str, Any]) -> None:
    """Route and assign a new ticket."""
    services.assign_new_ticket(uuid.UUID(payload["ticket_id"]))


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
