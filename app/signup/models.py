"""What a signup sent with an Idempotency-Key answered, kept 24 hours to replay (in `public`: there is
no organization before it)."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class SignupReplay(db.Model):
    """A signup's 201, sealed: it holds the admin's first API key (see `app.idempotency.sealed_key`)."""

    __tablename__ = "signup_idempotency_keys"
    __table_args__ = (sa.Index("ix_signup_idempotency_keys_created", "created_at"), {"schema": "public"})

    key: Mapped[str] = mapped_column(sa.String(80), primary_key=True)  # "sealed:" and an HMAC, never the key
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    response: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


def purge_expired(retention: timedelta) -> int:
    """Delete the answers kept longer than `retention`; return how many (the outbox relay's purge runs it)."""
    deleted = db.session.execute(
        sa.delete(SignupReplay).where(SignupReplay.created_at < sa.func.now() - retention)).rowcount
    db.session.commit()
    return deleted
