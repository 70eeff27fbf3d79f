"""Attachments of a ticket's conversation, and each tenant's media settings and storage use."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from app.conversation.models import Message
from app.extensions import db
from app.models_base import TENANT_SCHEMA, created_at, fk, uuid_pk

STATUSES = ("pending", "clean", "rejected", "infected", "scan_failed")
FINAL_STATUSES = ("clean", "rejected", "infected", "scan_failed")
REFUSED_STATUSES = ("rejected", "infected", "scan_failed")


class Attachment(db.Model):
    """An uploaded file: its bytes live in media storage under the tenant's id and its own id.

    `size` is the size of the file that is served (an image's re-encoded copy once it is clean).
    `antivirus` says which scanner gave the verdict ("clamav"), or "off" when the operator turned
    antivirus off; it stays null until a scan decides.
    """

    __tablename__ = "attachments"
    __table_args__ = (
        sa.CheckConstraint("status in ('pending', 'clean', 'rejected', 'infected', 'scan_failed')", name="status"),
        sa.CheckConstraint("size >= 0", name="size"),
        sa.CheckConstraint("stored_bytes >= 0", name="stored_bytes"),
        sa.Index("ix_attachments_ticket", "ticket_id", "created_at"),
        sa.Index("ix_attachments_message", "message_id"),
        TENANT_SCHEMA,
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    ticket_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("tenant.tickets.id", ondelete="CASCADE"), nullable=False
    )
    message_id: Mapped[uuid.UUID | None] = fk("messages.id", ondelete="SET NULL")
    uploader_id: Mapped[uuid.UUID | None] = fk("users.id")
    filename: Mapped[str] = mapped_column(sa.String(255))
    declared_type: Mapped[str | None] = mapped_column(sa.String(255))
    content_type: Mapped[str] = mapped_column(sa.String(255))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    # What the file's objects take of the organization's quota: the upload while pending, a clean
    # image's copy and thumbnail, nothing once refused (its objects are deleted).
    stored_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    sha256: Mapped[str] = mapped_column(sa.String(64))
    # Hidden from requesters: a file of an internal note (or of a deleted message), or one staff
    # uploaded and have not sent in a public message yet.
    internal: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    status: Mapped[str] = mapped_column(sa.String(12), default="pending", server_default="pending")
    status_reason: Mapped[str | None] = mapped_column(sa.Text)
    antivirus: Mapped[str | None] = mapped_column(sa.String(20))
    reencoded: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    has_thumbnail: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    # Scan tries held against the file: those that crashed or got no verdict (one reaching a verdict is given back).
    scan_attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = created_at()
    scanned_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    message: Mapped[Message | None] = relationship(
        Message, backref=backref("attachments", lazy="selectin", order_by="Attachment.created_at"))


class MediaSettings(db.Model):
    """The tenant's one row: its narrowed allowed types and size limit, its quota and its use.

    Null settings follow the instance's (`MEDIA_MAX_SIZE`, `MEDIA_TENANT_QUOTA`, every type).
    `used_bytes` is changed in the transaction that stores or drops a file, under this row's
    lock, so concurrent uploads can never overrun the quota together.
    """

    __tablename__ = "media_settings"
    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"), TENANT_SCHEMA)

    id: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, default=1, autoincrement=False)
    allowed_types: Mapped[list[str] | None] = mapped_column(ARRAY(sa.String(100)))
    max_size: Mapped[int | None] = mapped_column(sa.BigInteger)
    quota_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    used_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
