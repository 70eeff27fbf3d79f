"""API keys: minting, verifying and revoking. The key itself is shown once, then only its hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from app.auth import key_cache
from app.extensions import db
from app.people.models import User, lesser_role
from tenants import ApiKey, Tenant, TenantRef

KEY_PREFIX = "tms"


def key_digest(key: str) -> str:
    """Return the stored hash of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def mint_key(tenant_id: uuid.UUID | str, user_id: uuid.UUID, name: str, role: str) -> tuple[ApiKey, str]:
    """Create a key record in the session and return it with the plaintext key (shown once)."""
    prefix = secrets.token_hex(6)
    plaintext = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    record = ApiKey(
        id=uuid.uuid4(), tenant_id=tenant_id, prefix=prefix, key_hash=key_digest(plaintext), name=name,
        role=role, user_id=user_id,
    )
    db.session.add(record)
    return record, plaintext


def key_prefix(plaintext: str) -> str | None:
    """Return the public prefix of a well-formed key (what the registry indexes it by), or None."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 12:
        return None
    return parts[1]


@dataclass(frozen=True)
class VerifiedKey:
    """A live key: who it acts as, with which role, in which tenant (active or not)."""

    id: uuid.UUID
    role: str
    user_id: uuid.UUID
    tenant: TenantRef
    tenant_active: bool


_USER_ROLE = sa.select(User.role).where(User.id == sa.bindparam("user_id"), User.deleted_at.is_(None))
_LOOKUP = (
    sa.select(ApiKey.id, ApiKey.key_hash, ApiKey.role, ApiKey.user_id, Tenant.id.label("tenant_id"),
              Tenant.slug, Tenant.schema_name, Tenant.status)
    .join(Tenant, Tenant.id == ApiKey.tenant_id)
    .where(ApiKey.prefix == sa.bindparam("prefix"), ApiKey.revoked_at.is_(None))
)


def verify_key(plaintext: str) -> VerifiedKey | None:
    """Return the live key, or None for a malformed, unknown or revoked key, or one whose user is gone.

    The key acts with the lesser of its own role and its user's current role, so a key never
    keeps power its user has lost. Autocommit round trips on a pooled connection, outside the
    request's ORM transaction, so that transaction can start directly in the tenant's schema.
    Callers cache the answer only while the key generation stands (see `key_cache`), and every
    change of a user's role or a deletion moves the generation.
    """
    prefix = key_prefix(plaintext)
    if prefix is None:
        return None
    with db.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        row = conn.execute(_LOOKUP, {"prefix": prefix}).first()
        if row is None or not hmac.compare_digest(row.key_hash, key_digest(plaintext)):
            return None
        tenant = TenantRef(id=str(row.tenant_id), slug=row.slug, schema=row.schema_name)
        user_role = conn.execute(_USER_ROLE, {"user_id": row.user_id},
                                 execution_options={"schema_translate_map": {"tenant": tenant.schema}}).scalar()
    if user_role is None:
        return None
    return VerifiedKey(id=row.id, role=lesser_role(row.role, user_role), user_id=row.user_id, tenant=tenant,
                       tenant_active=row.status == "active")


def revoke_key(record: ApiKey) -> None:
    """Revoke a key; once committed, the very next request with it is refused."""
    record.revoked_at = datetime.now(UTC)
    key_cache.change_on_commit(str(record.tenant_id))
