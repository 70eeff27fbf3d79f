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

from flask import g, has_app_context

from app.extensions import db


@dataclass(frozen=True)
class Handler:
    name: str
    queue: str
    func: Callable[[dict[str, Any]], None]


HANDLERS: dict[str, list[Handler]] = {}
BY_NAME: dict[str, Handler] = {}


def subscribe(topic: str, queue: str = "default") -> Callable:
    """Register `func(payload)` to run in a worker, on `queue`, for each `topic` event."""

    def decorator(func: Callable[[dict[str, Any]], None]) -> Callable:
        handler = Handler(name=f"{func.__module__}.{func.__qualname__}", queue=queue, func=func)
        if handler.name not in BY_NAME:
            HANDLERS.setdefault(topic, []).append(handler)
            BY_NAME[handler.name] = handler
        return func

    return decorator


def emit(topic: str, payload: dict[str, Any]) -> None:
    """Write the event for each subscribed handler into the current transaction."""
    from app.outbox.models import OutboxEvent

    rows = [OutboxEvent(topic=topic, handler=h.name, payload=payload) for h in HANDLERS.get(topic, ())]
    if not rows:
        return
    db.session.add_all(rows)
    if has_app_context():
        g.setdefault("outbox_rows", []).extend(rows)
