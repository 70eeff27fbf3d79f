"""API keys: minting, verifying, rotating and revoking. The key is shown once, then only its hash.

A key reads `tms_` + 48 base62 characters: a 12-character lookup id, 30 random characters
(178 bits) and a 6-character CRC32 checksum of the two, like GitHub's tokens. The fixed prefix
and the checksum let secret scanners find leaked keys without false alarms, and let us refuse a
mistyped or made-up key before any database lookup. Only a SHA-256 of the whole key is stored
(the random part is far too long to guess, so a slow hash buys nothing and costs every request).
Keys minted before this format (`tms_<12 hex>_<43 characters>`) are still accepted.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from app.auth import key_cache
from app.errors import being_moved
from app.extensions import db
from app.people.models import User, lesser_role
from tenants import PRIMARY_SHARD, ApiKey, Tenant, TenantRef, engine_for, tenant_moved

KEY_PREFIX = "tms_"
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
LOOKUP_LENGTH, SECRET_LENGTH, CHECKSUM_LENGTH = 12, 30, 6
_KEY = re.compile(rf"tms_([0-9A-Za-z]{{{LOOKUP_LENGTH + SECRET_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})",
                  re.ASCII)
_LEGACY_KEY = re.compile(r"tms_([0-9a-f]{12})_[A-Za-z0-9_-]{43}", re.ASCII)


def key_digest(key: str) -> str:
    """Return the stored hash of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def _checksum(body: str) -> str:
    value, digits = zlib.crc32(body.encode()), []
    for _ in range(CHECKSUM_LENGTH):
        value, digit = divmod(value, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits))


def lookup_id(plaintext: str) -> str | None:
    """Return the lookup id of a well-formed key with a good checksum, or None (no database asked)."""
    match = _KEY.fullmatch(plaintext)
    if match is not None:
        body, checksum = match.groups()
        return body[:LOOKUP_LENGTH] if hmac.compare_digest(_checksum(body), checksum) else None
    legacy = _LEGACY_KEY.fullmatch(plaintext)
    return legacy.group(1) if legacy is not None else None


def mint_key(tenant_id: uuid.UUID | str, user_id: uuid.UUID, name: str, role: str,
             created_by: uuid.UUID | None = None, made_with: uuid.UUID | None = None) -> tuple[ApiKey, str]:
    """Create a key record in the session and return it with the plaintext key (shown once).

    `created_by`: the person who asked for it, and `made_with` the key they asked with (none for the
    signup's and the operator's keys).
    """
    body = "".join(secrets.choice(BASE62) for _ in range(LOOKUP_LENGTH + SECRET_LENGTH))
    prefix = body[:LOOKUP_LENGTH]
    plaintext = f"{KEY_PREFIX}{body}{_checksum(body)}"
    record = ApiKey(
        id=uuid.uuid4(), tenant_id=tenant_id, prefix=prefix, key_hash=key_digest(plaintext), name=name,
        role=role, user_id=user_id, created_by=created_by, made_with=made_with,
    )
    db.session.add(record)
    return record, plaintext


@dataclass(frozen=True)
class VerifiedKey:
    """A live key: who it acts as, with which role, in which tenant (active or not)."""

    id: uuid.UUID
    role: str
    user_id: uuid.UUID
    tenant: TenantRef
    tenant_active: bool
    expires_at: datetime | None = None

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC))


_USER_ROLE = sa.select(User.role).where(User.id == sa.bindparam("user_id"), User.deleted_at.is_(None))
_ADMINS = sa.select(sa.func.count()).where(User.id.in_(sa.bindparam("ids", expanding=True)), User.role == "admin",
                                           User.deleted_at.is_(None))
_LOOKUP = (
    sa.select(ApiKey.id, ApiKey.key_hash, ApiKey.role, ApiKey.user_id, ApiKey.created_by, ApiKey.made_with,
              ApiKey.expires_at,
              sa.and_(ApiKey.revoked_at.is_(None),
                      sa.or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > sa.func.now())).label("live"),
              Tenant.id.label("tenant_id"), Tenant.slug, Tenant.schema_name, Tenant.status, Tenant.shard,
              Tenant.txid_offset)
    .join(Tenant, Tenant.id == ApiKey.tenant_id)
    .where(ApiKey.prefix == sa.bindparam("prefix"))
)


class UnknownKey(Exception):
    """A well-formed key that no organization has (made up, or its secret wrong); it cost a lookup."""


class DeadKey(Exception):
    """A key revoked or past its end: neither is ever undone, so it never works again."""


def verify_key(plaintext: str) -> VerifiedKey | None:
    """Return the live key, or None for a malformed key or one whose user is gone.

    Raise UnknownKey for a well-formed key no organization has, and DeadKey for a revoked or
    expired one: callers remember the dead ones, and count the unknown ones against their sender.

    The key acts with the lesser of its own role and its user's current role, so a key never
    keeps power its user has lost. Autocommit round trips on a pooled connection, outside the
    request's ORM transaction, so that transaction can start directly in the tenant's schema.
    Callers cache the answer only while the key generation stands (see `key_cache`), and every
    change of a user's role or a deletion moves the generation.
    """
    prefix = lookup_id(plaintext)
    if prefix is None:
        return None
    with db.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        row = conn.execute(_LOOKUP, {"prefix": prefix}).first()
        if row is None or not hmac.compare_digest(row.key_hash, key_digest(plaintext)):
            raise UnknownKey
        if not row.live:
            raise DeadKey
        tenant = TenantRef(id=str(row.tenant_id), slug=row.slug, schema=row.schema_name, shard=row.shard,
                           txid_offset=row.txid_offset)
        # A key made for someone else holds only while its maker is an admin, and so does every key it
        # was made with, all the way up (`_roles`).
        makers = _makers(conn, row)
        roles = _roles(conn, tenant, row.user_id, makers) if tenant.shard == PRIMARY_SHARD else None
    if tenant.shard != PRIMARY_SHARD:
        with engine_for(tenant).execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            roles = _roles(conn, tenant, row.user_id, makers)
    if isinstance(roles, sa.exc.ProgrammingError):
        # Met mid-move (the schema fenced), the request may retry. Asked here, with the connection
        # given back; no tenant is set yet, so the app's handler cannot ask this itself.
        if tenant_moved(tenant):
            raise being_moved() from roles
        raise roles
    user_role, makers_admins = roles
    if user_role is None or not makers_admins:
        return None
    return VerifiedKey(id=row.id, role=lesser_role(row.role, user_role), user_id=row.user_id, tenant=tenant,
                       tenant_active=row.status == "active", expires_at=row.expires_at)


def _keys_made_with() -> sa.Select:
    """The keys a key (`:made_with`) was made with, all the way up: their users and makers."""
    up = sa.select(ApiKey.id, ApiKey.user_id, ApiKey.created_by, ApiKey.made_with) \
        .where(ApiKey.id == sa.bindparam("made_with")).cte("up", recursive=True)
    parent = aliased(ApiKey)
    up = up.union(sa.select(parent.id, parent.user_id, parent.created_by, parent.made_with)
                  .join(up, parent.id == up.c.made_with))
    return sa.select(up.c.user_id, up.c.created_by)


_MADE_WITH = _keys_made_with()


def _makers(conn: sa.Connection, row: Any) -> set[uuid.UUID]:
    """Return who made, for someone else, this key or any key it was made with (read in the registry)."""
    made = [(row.user_id, row.created_by)]
    if row.made_with is not None:
        made += conn.execute(_MADE_WITH, {"made_with": row.made_with}).all()
    return {maker for user_id, maker in made if maker is not None and maker != user_id}


def _roles(conn: sa.Connection, tenant: TenantRef, user_id: uuid.UUID, makers: set[uuid.UUID]
           ) -> tuple[str | None, bool] | sa.exc.ProgrammingError:
    """Read the role of a key's user (None: no such user, or deleted) and whether each of `makers` is an
    admin still, in the tenant's schema; or return the error if the schema is gone.

    A key an admin made for someone else is revoked when that admin is demoted or removed; one they
    made as that happened (a request let in before it) was committed after the revocation ran, and
    outlived it, as did any key made with it. Read here, the makers' roles stop such keys too.
    """
    options = {"schema_translate_map": {"tenant": tenant.schema}}
    try:
        user_role = conn.execute(_USER_ROLE, {"user_id": user_id}, execution_options=options).scalar()
        if not makers or user_role is None:
            return user_role, True
        admins = conn.execute(_ADMINS, {"ids": sorted(makers)}, execution_options=options).scalar()
        return user_role, admins == len(makers)
    except sa.exc.ProgrammingError as exc:
        return exc


def revoke_key(record: ApiKey) -> None:
    """Revoke a key and the keys made with it; once committed, the very next request with any is refused."""
    revoke_keys(record.tenant_id, ApiKey.id == record.id)


def revoke_keys(tenant_id: uuid.UUID | str, *which: sa.ColumnElement[bool]) -> None:
    """Revoke a tenant's live keys that match `which`, and, all the way down, the live keys made with them.

    A key minted with a key holds no more trust than it: else whoever held a key could outlive its
    revocation by minting another first.
    """
    tenant = uuid.UUID(str(tenant_id))
    doomed = sa.select(ApiKey.id).where(ApiKey.tenant_id == tenant, ApiKey.revoked_at.is_(None), *which) \
        .cte("doomed", recursive=True)
    child = aliased(ApiKey)
    doomed = doomed.union(sa.select(child.id).join(doomed, child.made_with == doomed.c.id)
                          .where(child.tenant_id == tenant, child.revoked_at.is_(None)))
    db.session.execute(sa.update(ApiKey).where(ApiKey.id.in_(sa.select(doomed.c.id)))
                       .values(revoked_at=sa.func.now()).execution_options(synchronize_session="fetch"))
    key_cache.change_on_commit(str(tenant))
