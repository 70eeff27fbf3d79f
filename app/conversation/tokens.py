"""Short-lived, single-use stream tokens, for browsers that cannot set headers on a WebSocket.

A token is bound to one tenant, user (and key, or browser session, that minted it) and ticket, kept in Redis
only as a hash with a TTL. Redeeming it checks the grant again in Postgres: a token minted before
a revocation, deletion, demotion or suspension opens nothing, or opens with the role the user has
now. It is taken (DEL, which one request alone can win) only once the request is checked, so it
opens at most one socket, and a request refused for a passing reason (a tenant move's 503) may be
sent again with it.
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
    """Read a token's grant; None if unknown, expired, used, or its tenant is not active. Take it with
    `take_token` once the request is checked."""
    try:
        raw = redis_client().get(_key(token))
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


def take_token(token: str) -> bool:
    """Take a redeemed token for good; False if another request took it first (it works once)."""
    try:
        return redis_client().delete(_key(token)) == 1
    except redis.RedisError:
        return False
