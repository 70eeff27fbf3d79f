"""Messages on a ticket, numbered by `seq` within the ticket."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TSVECTOR, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import TENANT_SCHEMA, created_at, fk, uuid_pk


class Message(db.Model):
    __tablename__ = "messages"
    __table_args__ = (
        sa.UniqueConstraint("ticket_id", "seq", name="uq_messages_ticket_seq"),
        sa.Index("ix_messages_search", "search_vector", postgresql_using="gin"),
        sa.Index("ix_messages_parent", "parent_id"),
        # Edited or deleted messages by the time of that change: a socket's resync reads a ticket's recent ones.
        sa.Index("ix_messages_changed", "ticket_id", sa.text("coalesce(deleted_at, edited_at)"),
                 postgresql_where=sa.text("coalesce(deleted_at, edited_at) IS NOT NULL")),
        TENANT_SCHEMA,
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    ticket_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("tenant.tickets.id", ondelete="CASCADE"), nullable=False
    )
    seq: Mapped[int] = mapped_column(sa.Integer)
    parent_id: Mapped[uuid.UUID | None] = fk("messages.id")
    author_id: Mapped[uuid.UUID | None] = fk("users.id")
    internal: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    body: Mapped[str] = mapped_column(sa.Text)
    # `body` rendered and sanitised when written (`app.markdown.render`); NULL for rows written before.
    # A change to what `render` produces comes with a migration setting it back to NULL.
    body_html: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = created_at()
    edited_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR,
        sa.Computed("to_tsvector('english'::regconfig, coalesce(body, ''))", persisted=True),
        deferred=True,
    )
