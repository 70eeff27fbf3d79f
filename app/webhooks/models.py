"""Webhook subscriptions, their deliveries (one per event and subscription) and each attempt."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import TENANT_SCHEMA, created_at, updated_at, uuid_pk

DELIVERY_STATES = ("pending", "delivered", "failed")


class WebhookSubscription(db.Model):
    """A receiver URL and the event types it wants; `secret` signs each delivery.

    Each earlier secret still in its rotation's grace period signs too (`previous_secrets`, newest
    first: `{"secret", "expires_at"}`). The secrets are kept as they are, not hashed: signing needs them.
    """

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (sa.Index("ix_webhook_subscriptions_created", "created_at", "id"), TENANT_SCHEMA)

    id: Mapped[uuid.UUID] = uuid_pk()
    url: Mapped[str] = mapped_column(sa.String(2048))
    events: Mapped[list[str]] = mapped_column(ARRAY(sa.String(40)))
    include_internal: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    description: Mapped[str | None] = mapped_column(sa.String(500))
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    disabled_reason: Mapped[str | None] = mapped_column(sa.Text)
    disabled_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    secret: Mapped[str] = mapped_column(sa.String(256))
    previous_secrets: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list,
                                                                   server_default=sa.text("'[]'::jsonb"))
    consecutive_failures: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    failing_since: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_success_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()

    def secrets_in_grace(self, now: datetime) -> list[dict[str, str]]:
        """Return the earlier secrets that still sign at `now`, newest first."""
        return [p for p in self.previous_secrets or [] if datetime.fromisoformat(p["expires_at"]) > now]

    @property
    def previous_secret_expires_at(self) -> datetime | None:
        """When the last earlier secret stops signing; None when none does."""
        ends = [datetime.fromisoformat(p["expires_at"]) for p in self.secrets_in_grace(datetime.now(UTC))]
        return max(ends, default=None)


class WebhookDelivery(db.Model):
    """Getting one event to one subscription: retried with backoff until delivered or given up.

    `leased_until` is set while a worker is sending, so two jobs never send the same attempt; a
    worker killed mid-send leaves a lease that runs out, and the relay hands the delivery on.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_subscription_event"),
        sa.CheckConstraint("state in ('pending', 'delivered', 'failed')", name="state"),
        sa.Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=sa.text("state = 'pending'")),
        sa.Index("ix_webhook_deliveries_event", "event_id"),
        TENANT_SCHEMA,
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("tenant.webhook_subscriptions.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey("tenant.events.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(sa.String(10), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    manual: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    next_attempt_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    leased_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    enqueued_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class WebhookAttempt(db.Model):
    """One POST to a receiver (or one that could not be made), as the delivery log shows it."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        sa.Index("ix_webhook_attempts_subscription", "subscription_id", "created_at", "id"),
        sa.Index("ix_webhook_attempts_delivery", "delivery_id"),
        TENANT_SCHEMA,
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("tenant.webhook_deliveries.id", ondelete="CASCADE"))
    subscription_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_uid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_type: Mapped[str] = mapped_column(sa.String(40))
    attempt: Mapped[int] = mapped_column(sa.Integer)
    manual: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    state: Mapped[str] = mapped_column(sa.String(12))  # sending, succeeded, failed
    url: Mapped[str] = mapped_column(sa.String(2048))
    request_headers: Mapped[dict] = mapped_column(JSONB)
    request_body: Mapped[str] = mapped_column(sa.Text)
    response_status: Mapped[int | None] = mapped_column(sa.Integer)
    response_headers: Mapped[dict | None] = mapped_column(JSONB)
    response_body: Mapped[str | None] = mapped_column(sa.Text)
    error: Mapped[str | None] = mapped_column(sa.Text)
    latency_ms: Mapped[int | None] = mapped_column(sa.Integer)
    next_retry_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
