"""Short-lived, single-use stream tokens, for browsers that cannot set headers on a WebSocket.

A token is bound to one tenant, user and ticket, kept in Redis only as a hash with a TTL, and
taken with GETDEL, so it opens at most one socket.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass

import redis
from flask import current_app
from flask_smorest import abort

from app.auth.actor import Actor
from app.extensions import redis_client
from tenants import TenantRef


@dataclass(frozen=True)
class StreamGrant:
    tenant_slug: str
    actor: Actor
    ticket_id: uuid.UUID


def _key(token: str) -> str:
    return "tms:stream-token:" + hashlib.sha256(token.encode()).hexdigest()


def issue_token(tenant: TenantRef, actor: Actor, ticket_id: uuid.UUID) -> tuple[str, int]:
    """Store a new token for `actor` on `ticket_id`; return it and its lifetime in seconds."""
    token = secrets.token_urlsafe(32)
    ttl = current_app.config["STREAM_TOKEN_TTL"]
    grant = {"tenant_id": tenant.id, "tenant_slug": tenant.slug, "ticket_id": str(ticket_id),
             "user_id": str(actor.user_id) if actor.user_id else None, "role": actor.role,
             "api_key_id": str(actor.api_key_id) if actor.api_key_id else None}
    try:
        redis_client().set(_key(token), json.dumps(grant), ex=ttl)
    except redis.RedisError:
        abort(503, message="Stream tokens are unavailable right now; use the Authorization header.")
    return token, ttl


def redeem_token(token: str) -> StreamGrant | None:
    """Take a token (it works once); None if unknown, expired or already used."""
    try:
        raw = redis_client().getdel(_key(token))
    except redis.RedisError:
        return None
    if raw is None:
        return None
    grant = json.loads(raw)
    actor = Actor(user_id=uuid.UUID(grant["user_id"]) if grant["user_id"] else None, role=grant["role"],
                  api_key_id=uuid.UUID(grant["api_key_id"]) if grant["api_key_id"] else None)
    return StreamGrant(tenant_slug=grant["tenant_slug"], actor=actor, ticket_id=uuid.UUID(grant["ticket_id"]))
