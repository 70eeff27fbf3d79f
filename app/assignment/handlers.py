"""Outbox handlers: assignment runs in RQ workers on the `assignment` queue, never in a request.

Each handler runs inside the worker's app and tenant context, in the transaction that marks its
outbox row processed, so a retried or redelivered row never assigns a ticket twice. Each also
offers `run_batch` (see `app.worker`): under a burst, one job assigns many new tickets with one
set of locks, and many queued drain events collapse into one drain.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask

from app.assignment import services
from app.outbox import subscribe

QUEUE = "assignment"


def init_app(app: Flask) -> None:
    """Nothing to set: importing this module subscribed its handlers; `create_app` names it here."""


def drain_once(payloads: list[dict[str, Any]]) -> None:
    """However many drain events are pending, one drain hands out what can be."""
    services.drain()


def assign_created_tickets(payloads: list[dict[str, Any]]) -> None:
    """Route and assign many new tickets in one transaction."""
    services.assign_new_tickets([uuid.UUID(p["ticket_id"]) for p in payloads])


@subscribe("ticket.created", queue=QUEUE, batch=assign_created_tickets)
def assign_created_ticket(payload: dict[str, Any]) -> None:
    """Route and assign a new ticket."""
    services.assign_new_ticket(uuid.UUID(payload["ticket_id"]))


@subscribe("ticket.closed", queue=QUEUE, batch=drain_once)
def drain_after_close(payload: dict[str, Any]) -> None:
    """A closed ticket frees its agent's capacity: hand out queued tickets."""
    services.drain()


@subscribe("agent.changed", queue=QUEUE, batch=drain_once)
def drain_after_agent_change(payload: dict[str, Any]) -> None:
    """An agent became available, gained capacity or skills, or joined a team: drain the queue."""
    services.drain()


@subscribe(services.RULES_CHANGED, queue=QUEUE, batch=drain_once)
def drain_after_rules_change(payload: dict[str, Any]) -> None:
    """Rules changed: re-route queued tickets and hand out what can be."""
    services.drain()


@subscribe(services.QUEUE_CHANGED, queue=QUEUE, batch=drain_once)
def drain_after_manual_change(payload: dict[str, Any]) -> None:
    """A ticket was taken from an agent or put back in the queue by hand: drain the queue."""
    services.drain()


@subscribe("ticket.updated", queue=QUEUE, batch=drain_once)
def drain_after_update(payload: dict[str, Any]) -> None:
    """An update may free capacity (resolved, pending -> resolved, reassigned): drain the queue."""
    services.drain()

