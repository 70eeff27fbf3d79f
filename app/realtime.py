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
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.extensions import db, redis_client
from tenants.context import current_tenant

log = logging.getLogger(__name__)


def channel(tenant_id: str, ticket_id: uuid.UUID | str) -> str:
    """Return the pub/sub channel of a ticket."""
    return f"tms:{tenant_id}:ticket:{ticket_id}"


def publish_after_commit(ticket_id: uuid.UUID | str, payload: dict[str, Any]) -> None:
    """Queue a live event for the ticket; it is published only if the transaction commits."""
    session = db.session()
    session.info.setdefault("live_events", []).append((channel(current_tenant().id, ticket_id), payload))


def init_app(app: Flask) -> None:
    event.listen(Session, "after_commit", _publish)
    event.listen(Session, "after_soft_rollback", _discard)


def _publish(session: Session) -> None:
    events = session.info.pop("live_events", None)
    if not events:
        return
    try:
        pipe = redis_client().pipeline(transaction=False)
        for name, payload in events:
            pipe.publish(name, json.dumps(payload, default=str))
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("live events not published (clients catch up by seq): %s", exc)


def _discard(session: Session, previous_transaction: object) -> None:
    if not session.in_transaction():
        session.info.pop("live_events", None)
