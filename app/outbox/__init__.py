"""The transactional outbox: background work written in the same transaction as its cause.

`emit(topic, payload)` adds one outbox row per handler subscribed to the topic. After the commit
the rows are handed to RQ at once (the fast path); the relay (`flask outbox relay`) re-enqueues
any row still unprocessed after a while, which covers a Redis outage or a killed worker. A job
locks its row, runs the handler and marks the row processed in one transaction, so a row's work
takes effect exactly once however often it is delivered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app import unit_of_work
from app.extensions import db
from tenants import current_tenant

Payload = dict[str, Any]
OUTBOX_ROWS = "outbox_rows"


@dataclass(frozen=True)
class Handler:
    """A function run in a worker for each event of a topic; `run_batch`, if set, takes many at once."""

    name: str
    queue: str
    func: Callable[[Payload], None]
    run_batch: Callable[[list[Payload]], None] | None = None


HANDLERS: dict[str, list[Handler]] = {}
BY_NAME: dict[str, Handler] = {}


def subscribe(topic: str, queue: str = "default",
              batch: Callable[[list[Payload]], None] | None = None) -> Callable:
    """Register `func(payload)` to run in a worker, on `queue`, for each `topic` event.

    With `batch`, a job may hand many pending rows of the handler to `batch(payloads)` at once
    (see `app.worker`).
    """

    def decorator(func: Callable[[Payload], None]) -> Callable:
        handler = Handler(name=f"{func.__module__}.{func.__qualname__}", queue=queue, func=func, run_batch=batch)
        if handler.name not in BY_NAME:
            HANDLERS.setdefault(topic, []).append(handler)
            BY_NAME[handler.name] = handler
        return func

    return decorator


def emit(topic: str, payload: Payload) -> None:
    """Write the event for each subscribed handler into the current transaction."""
    from app.outbox.models import OutboxEvent

    rows = [OutboxEvent(topic=topic, handler=h.name, payload=payload) for h in HANDLERS.get(topic, ())]
    if not rows:
        return
    db.session.add_all(rows)
    slug = current_tenant().slug
    for row in rows:
        unit_of_work.after_commit(OUTBOX_ROWS, (slug, row))
