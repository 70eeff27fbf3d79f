"""The append-only audit log: record a change in the caller's transaction, and read it back newest first."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.audit.models import AuditEntry
from app.extensions import db
from app.pagination import SortKey, page

NEWEST_FIRST = [SortKey(AuditEntry.id, descending=True, kind="int")]
# What the log records changes of; the API's `entity_type` filter accepts these only.
ENTITY_TYPES = ("api_key", "assignment_rule", "attachment", "media_settings", "message", "team", "ticket", "user",
                "webhook")


def record(entity: str, entity_id: uuid.UUID, action: str, before: dict | None = None,
           after: dict | None = None) -> None:
    """Add an audit entry to the current transaction, attributed to the current actor."""
    from app.auth.actor import current_actor_or_none

    if entity not in ENTITY_TYPES:
        raise ValueError(f"{entity!r} is not in ENTITY_TYPES")  # the filter would refuse to find it

    actor = current_actor_or_none()
    db.session.add(AuditEntry(
        actor_id=actor.user_id if actor else None,
        api_key_id=actor.api_key_id if actor else None,
        entity=entity, entity_id=entity_id, action=action,
        before=_jsonable(before), after=_jsonable(after),
    ))


def _jsonable(values: dict[str, Any] | None) -> dict | None:
    if values is None:
        return None
    return {k: (v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, uuid.UUID) else v)
            for k, v in values.items()}


def list_events(limit: int, cursor: str | None, entity_type: str | None = None, entity_id: uuid.UUID | None = None,
                actor_id: uuid.UUID | None = None, action: str | None = None,
                created_after: datetime | None = None, created_before: datetime | None = None
                ) -> tuple[list[AuditEntry], str | None]:
    """Return a page of audit entries, newest first, matching every filter given."""
    stmt = sa.select(AuditEntry)
    for column, value in ((AuditEntry.entity, entity_type), (AuditEntry.entity_id, entity_id),
                          (AuditEntry.actor_id, actor_id), (AuditEntry.action, action)):
        if value is not None:
            stmt = stmt.where(column == value)
    if created_after is not None:
        stmt = stmt.where(AuditEntry.created_at >= created_after)
    if created_before is not None:
        stmt = stmt.where(AuditEntry.created_at < created_before)
    return page(db.session, stmt, NEWEST_FIRST, limit, cursor)
