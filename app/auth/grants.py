"""What an open socket or a stream token may do, checked again where it is used (invariant 7).

A grant is who a socket acts as: a tenant, a user and, for API keys, the key. It is turned into
an actor afresh from Postgres (`live_actor`) when a stream token is redeemed and whenever the
key generation has moved since the socket last looked (see `key_cache`): the key must be live,
the user not deleted and the tenant active, and the role is the lesser of the key's and the
user's current one. A key past its end (a rotated key's grace) is gone like a revoked one, and the
actor carries that end, so a socket closes when it comes though nothing announces it. Reading the
generation is one small Redis read, so a socket can afford it before every frame it acts on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from app.auth.actor import Actor
from app.extensions import db
from app.people.models import User, lesser_role
from tenants import ApiKey, TenantRef, tenant_is_active


@dataclass(frozen=True)
class Grant:
    tenant: TenantRef
    user_id: uuid.UUID
    api_key_id: uuid.UUID | None = None
    session_version: int | None = None  # set when a signed-in browser minted it: sign-out ends it

    @classmethod
    def of(cls, tenant: TenantRef, actor: Actor) -> Grant:
        if actor.user_id is None:
            raise ValueError("a grant needs a user")
        return cls(tenant=tenant, user_id=actor.user_id, api_key_id=actor.api_key_id,
                   session_version=actor.session_version)


def live_actor(grant: Grant) -> Actor | None:
    """Return the actor `grant` allows now, or None if its tenant, key, user or browser session is gone.

    Runs in the grant's tenant context (the caller's request or socket).
    """
    if not tenant_is_active(grant.tenant.id):
        return None
    user = db.session.execute(
        sa.select(User.role, User.session_version).where(User.id == grant.user_id, User.deleted_at.is_(None))
    ).first()
    if user is None or (grant.session_version is not None and user.session_version != grant.session_version):
        return None
    role, expires_at = user.role, None
    if grant.api_key_id is not None:
        key = db.session.execute(sa.select(ApiKey.role, ApiKey.expires_at).where(
            ApiKey.id == grant.api_key_id, ApiKey.revoked_at.is_(None), ApiKey.tenant_id == uuid.UUID(grant.tenant.id),
            # By this process's clock, as the socket's wait for the key's end is (`TicketStream.key_seconds_left`).
            sa.or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > datetime.now(UTC)))).first()
        if key is None:
            return None
        role, expires_at = lesser_role(key.role, role), key.expires_at
    return Actor(user_id=grant.user_id, role=role, api_key_id=grant.api_key_id,
                 session_version=grant.session_version, key_expires_at=expires_at)
