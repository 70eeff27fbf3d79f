"""Events, recorded once each, and the outbox rows of the handlers that run for them.

`events` is the durable record of everything that happened in a tenant, in the order the event
feed serves it; `outbox` holds one row per (event, handler), processed at least once,
idempotently. Webhook deliveries hang off events the same way (`app.webhooks.models`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import TENANT_SCHEMA, created_at
from tenants import current_tenant


def tenant_txid(offset: sa.ColumnElement[int] | None = None) -> sa.ColumnElement[int]:
    """Return the writing transaction's id as the tenant counts it: its offset (after a move) added.

    The id is PostgreSQL's 64-bit xid8, a number that never wraps. Every writer of `events.txid`
    states it this way; the column has no default, which would leave the offset out.

    The offset is the current tenant's, or `offset` (a bind parameter, for statements compiled
    once and run for many tenants).
    """
    added = current_tenant().txid_offset if offset is None else offset
    return sa.literal_column("pg_current_xact_id()::text::bigint") + added


class Event(db.Model):
    """Something that happened: `payload` is what handlers are given, `data` what integrators see.

    Internal events (`data` null) drive background work only; public ones are served by the
    event feed and delivered to webhooks. `txid` is the writing transaction's id, which orders
    the feed safely against concurrent writers (see `app.events.services`).
    """

    __tablename__ = "events"
    __table_args__ = (
        sa.Index("ix_events_feed", "txid", "id", postgresql_where=sa.text("data is not null")),
        sa.Index("ix_events_created", "created_at"),
        TENANT_SCHEMA,
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    uid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True,
                                           server_default=sa.text("gen_random_uuid()"))
    type: Mapped[str] = mapped_column(sa.String(40))
    payload: Mapped[dict] = mapped_column(JSONB)
    data: Mapped[dict | None] = mapped_column(JSONB(none_as_null=True))
    txid: Mapped[int] = mapped_column(sa.BigInteger)  # see `tenant_txid`
    created_at: Mapped[datetime] = created_at()


class OutboxRow(db.Model):
    """One handler's work for one event."""

    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index("ix_outbox_pending", "id", postgresql_where=sa.text("processed_at is null")),
        sa.Index("ix_outbox_event", "event_id"),
        TENANT_SCHEMA,
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    event_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey("tenant.events.id", ondelete="CASCADE"))
    handler: Mapped[str] = mapped_column(sa.String(80))
    created_at: Mapped[datetime] = created_at()
    enqueued_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    processed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")  # runs done or failed, not outages
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    # Set when OUTBOX_MAX_ATTEMPTS runs failed: the relay leaves it until `flask outbox retry` clears it.
    given_up_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
