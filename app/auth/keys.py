"""API keys: minting, verifying and revoking. The key itself is shown once, then only its hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from app.extensions import db
from tenants.models import ApiKey, Tenant

KEY_PREFIX = "tms"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def mint_key(tenant_id: uuid.UUID | str, user_id: uuid.UUID, name: str, role: str) -> tuple[ApiKey, str]:
    """Create a key record in the session and return it with the plaintext key (shown once)."""
    prefix = secrets.token_hex(6)
    plaintext = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    record = ApiKey(
        id=uuid.uuid4(), tenant_id=tenant_id, prefix=prefix, key_hash=_hash(plaintext), name=name,
        role=role, user_id=user_id,
    )
    db.session.add(record)
    return record, plaintext


def verify_key(plaintext: str) -> tuple[ApiKey, Tenant] | None:
    """Return the live key and its tenant (active or not), or None for a malformed, unknown or revoked key."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 12:
        return None
    row = db.session.execute(
        sa.select(ApiKey, Tenant)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.prefix == parts[1], ApiKey.revoked_at.is_(None))
    ).first()
    if row is None or not hmac.compare_digest(row.ApiKey.key_hash, _hash(plaintext)):
        return None
    return row.ApiKey, row.Tenant


def revoke_key(record: ApiKey) -> None:
    """Revoke a key; the very next request with it is refused."""
    record.revoked_at = datetime.now(UTC)
