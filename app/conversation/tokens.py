"""Short-lived, single-use stream tokens, for browsers that cannot set headers on a WebSocket.

A token is bound to one tenant, user (and key, or browser session, that minted it) and ticket, kept in Redis
only as a hash with a TTL, and taken with GETDEL, so it opens at most one socket. Redeeming it
checks the grant again in Postgres: a token minted before a revocation, deletion, demotion or
suspension opens nothing, or opens with the role the user has now.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass

import redis
from flask import current_app

from app.auth.actor import Actor
from app.auth.grants import Grant
from app.errors import Unavailable
from app.extensions import redis_client
from app.tickets.services import ticket_for
from tenants import TenantRef, active_tenant


@dataclass(frozen=True)
class StreamToken:
    token: str
    expires_in: int
    ticket_id: uuid.UUID


@dataclass(frozen=True)
class Redeemed:
    grant: Grant
    ticket_id: uuid.UUID


def _key(token: str) -> str:
    return "tms:stream-token:" + hashlib.sha256(token.encode()).hexdigest()


def issue_token(tenant: TenantRef, actor: Actor, ticket_id: uuid.UUID) -> StreamToken:
    """Mint a token for `actor` on a ticket they can see (NotFound otherwise)."""
    ticket_for(actor, ticket_id)
    token = secrets.token_urlsafe(32)
    ttl = current_app.config["STREAM_TOKEN_TTL"]
    grant = {"tenant_id": tenant.id, "tenant_slug": tenant.slug, "ticket_id": str(ticket_id),
             "user_id": str(actor.user_id), "api_key_id": str(actor.api_key_id) if actor.api_key_id else None,
             "session_version": actor.session_version}
    try:
        redis_client().set(_key(token), json.dumps(grant), ex=ttl)
    except redis.RedisError:
        raise Unavailable("Stream tokens are unavailable right now; use the Authorization header.") from None
    return StreamToken(token=token, expires_in=ttl, ticket_id=ticket_id)


def redeem_token(token: str) -> Redeemed | None:
    """Take a token (it works once); None if unknown, expired, used, or its tenant is not active."""
    try:
        raw = redis_client().getdel(_key(token))
    except redis.RedisError:
        return None
    if raw is None:
        return None
    stored = json.loads(raw)
    tenant = active_tenant(stored["tenant_slug"])
    if tenant is None or str(tenant.id) != stored["tenant_id"]:
        return None
    grant = Grant(tenant=tenant.ref(), user_id=uuid.UUID(stored["user_id"]),
                  api_key_id=uuid.UUID(stored["api_key_id"]) if stored["api_key_id"] else None,
                  session_version=stored.get("session_version"))
    return Redeemed(grant=grant, ticket_id=uuid.UUID(stored["ticket_id"]))
