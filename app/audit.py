"""The append-only audit log: who changed what, from what to what, and when."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import TENANT_SCHEMA, created_at


class AuditEntry(db.Model):
    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_entity", "entity", "entity_id", "id"), TENANT_SCHEMA)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    created_at: Mapped[datetime] = created_at()
    actor_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    entity: Mapped[str] = mapped_column(sa.String(40))
    entity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    action: Mapped[str] = mapped_column(sa.String(40))
    before: Mapped[dict | None] = mapped_column(JSONB)
    after: Mapped[dict | None] = mapped_column(JSONB)


def record(entity: str, entity_id: uuid.UUID, action: str, before: dict | None = None,
           after: dict | None = None) -> None:
    """Add an audit entry to the current transaction, attributed to the current actor."""
    from app.auth.actor import current_actor_or_none

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
