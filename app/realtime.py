"""Publish live ticket events on Redis after the change is committed (invariant 3: store, then send).

Channel per tenant and ticket: `tms:<tenant_id>:ticket:<ticket_id>`. Publishing is best effort:
a subscriber that misses an event catches up from Postgres by `seq`.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import redis
from flask import Flask

from app import quick_redis, unit_of_work
from app.extensions import redis_client
from tenants import current_tenant

log = logging.getLogger(__name__)
LIVE_EVENTS = "live_events"


def init_app(app: Flask) -> None:
    unit_of_work.handle(LIVE_EVENTS, _publish)


def channel(tenant_id: str, ticket_id: uuid.UUID | str) -> str:
    """Return the pub/sub channel of a ticket."""
    return f"tms:{tenant_id}:ticket:{ticket_id}"


def publish_after_commit(ticket_id: uuid.UUID | str, payload: dict[str, Any]) -> None:
    """Queue a live event for the ticket; it is published only if the transaction commits."""
    unit_of_work.after_commit(LIVE_EVENTS, (channel(current_tenant().id, ticket_id), payload))


def publish_committed(ticket_id: uuid.UUID | str, event: bytes) -> None:
    """Publish a live event, already encoded as JSON, for a change committed outside the session."""
    try:
        quick_redis.command("PUBLISH", channel(current_tenant().id, ticket_id), event)
    except redis.RedisError as exc:
        log.warning("live event not published (clients catch up by seq): %s", exc)


def _publish(events: list[tuple[str, dict[str, Any]]]) -> None:
    try:
        pipe = redis_client().pipeline(transaction=False)
        for name, payload in events:
            pipe.publish(name, json.dumps(payload, default=str))
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("live events not published (clients catch up by seq): %s", exc)
