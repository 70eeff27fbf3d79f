"""Authenticate every request before its view runs, and scope it to its tenant.

API requests carry a key, which alone names the tenant; UI requests name the tenant in the URL
and carry a flask-login session bound to that tenant and to the user's session version (so a
cookie replayed after logout is refused). Anything unknown fails closed with 401 or 404.
"""

from __future__ import annotations

import uuid

from flask import Flask, g, request, session
from flask_login import current_user
from flask_smorest import abort

from app.auth import ratelimit, throttle
from app.auth.actor import Actor, set_actor
from app.auth.cross_tenant import cross_tenant_attempt
from app.auth.key_cache import KeyCache, generation_key, key_cache
from app.auth.key_cache import init_app as key_cache_init
from app.auth.keys import DeadKey, UnknownKey, VerifiedKey, key_digest, lookup_id, verify_key
from app.auth.ratelimit import RateLimit
from app.extensions import db, is_api_request, login
from tenants import active_tenant, current_tenant_or_none, forget_current_tenant, requested_slug, set_current_tenant

# Blueprints under /api/v1 that need no key.
PUBLIC_API_BLUEPRINTS = frozenset({"api_signup", "api-docs"})
# Endpoints that authenticate themselves (the stream accepts a one-time `?token=`).
SELF_AUTHENTICATING = frozenset({"stream.ticket_stream"})
PUBLIC_API_ENDPOINTS = frozenset({"swagger_ui_asset"})


def init_app(app: Flask) -> None:
    key_cache_init(app)
    app.before_request(authenticate)
    app.after_request(add_rate_limit_headers)
    app.teardown_request(forget_tenant)
    login.user_loader(load_user)
    login.login_view = "auth.login"
    login.login_message = None


def authenticate() -> None:
    """Resolve the tenant and actor of this request, or refuse it."""
    g.actor = None
    if is_api_request():
        if (request.blueprint in PUBLIC_API_BLUEPRINTS or request.endpoint in PUBLIC_API_ENDPOINTS
                or request.endpoint in SELF_AUTHENTICATING):
            return
        if request.endpoint is None:
            if request.routing_exception is not None:
                raise request.routing_exception  # 405 with Allow for a path that exists, else 404
            abort(404, message="No such endpoint.")
        authenticate_api_key(request.headers.get("Authorization", ""))
        return
    slug = requested_slug()
    if slug is None:
        return
    tenant = active_tenant(slug)
    if tenant is None:
        abort(404, message="No such organization.")
    set_current_tenant(tenant.ref())
    g.organization = tenant.name  # the pages' navigation names it
    if current_user.is_authenticated:
        set_actor(Actor(user_id=current_user.id, role=current_user.role,
                        session_version=current_user.session_version))


def authenticate_api_key(header: str) -> None:
    """Accept `Bearer <key>`: set tenant and actor, count the request against the key's limit."""
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        abort(401, message="Send an API key as 'Authorization: Bearer <key>'.",
              headers={"WWW-Authenticate": "Bearer"})
    try:
        found, limit = verified_and_counted(key.strip())
    except UnknownKey:  # made up: counted against its sender, whose lookups are limited
        _refuse_unknown_keys_over_the_limit(throttle.made_up_key())
        found = None
    if found is None:
        abort(401, message="The API key is not valid or has been revoked.",
              headers={"WWW-Authenticate": "Bearer"})
    slug = requested_slug()
    if slug is not None and slug != found.tenant.slug:
        cross_tenant_attempt("api_key", found.id, found.tenant.id, slug)
        abort(404, message="No such organization.")
    if not found.tenant_active:
        abort(404, message="No such organization.")
    set_current_tenant(found.tenant)
    set_actor(Actor(user_id=found.user_id, role=found.role, api_key_id=found.id, key_expires_at=found.expires_at))
    g.rate_limit = limit
    if limit is not None and limit.exceeded:
        whose = "your organization's" if limit.tenant_exceeded else "this key's"
        abort(429, message=f"Over {whose} rate limit; retry after the window resets.", headers=limit.headers())


def _refuse_unknown_keys_over_the_limit(wait: throttle.Wait | None) -> None:
    if wait is not None:
        abort(429, message="Too many unknown API keys from this address; retry after the wait.",
              headers={"Retry-After": str(wait.retry_after)})


def verified_and_counted(key: str) -> tuple[VerifiedKey | None, RateLimit | None]:
    """Return the live key (cached while its tenant's key generation stands) and its rate-limit count.

    A cached key is counted and its tenant's generation checked in one Redis round trip; Postgres
    is asked only on a miss, when the generation moved, or when Redis cannot be read. The
    generation the answer is known good for is left in `g.key_generation` (None: unknown), so an
    open socket can tell whether anything changed since.
    """
    cache = key_cache()
    digest = key_digest(key)
    g.key_generation = None
    if digest in cache.dead:
        return None, None
    entry = cache.get(digest)
    if entry is not None:
        counted = ratelimit.hit_and_read(entry.key.tenant.id, str(entry.key.id), generation_key(entry.key.tenant.id))
        if counted is not None and counted[1] == entry.generation:
            g.key_generation = entry.generation or b""  # as `current_generation` spells "none yet"
            return entry.key, counted[0]
        cache.entries.pop(digest, None)
        found = _verified(cache, key, digest)
        if found is not None and counted is not None:
            cache.put(digest, found, counted[1])  # the generation was read before Postgres was
            g.key_generation = counted[1] or b""
        return found, None if counted is None else counted[0]
    prefix = lookup_id(key)
    if digest not in cache.vouched:  # keys this process has found live before are not held back
        _refuse_unknown_keys_over_the_limit(throttle.key_wait())
    seen = cache.generation_seen(prefix)  # read from Redis by an earlier request, so before Postgres now
    found = _verified(cache, key, digest)
    if found is None:
        return None, None
    counted = ratelimit.hit_and_read(found.tenant.id, str(found.id), generation_key(found.tenant.id))
    if counted is None:
        return found, None
    if counted[1] == seen:  # no key of this tenant changed between the generation last seen and now
        cache.put(digest, found, counted[1])
        g.key_generation = counted[1] or b""
    cache.saw(prefix, found.tenant.id, counted[1])
    return found, counted[0]


def _verified(cache: KeyCache, key: str, digest: str) -> VerifiedKey | None:
    """Verify a key in Postgres; remember a dead one, so its retries cost no lookup, and a live one, so a hold
    on its address spares it (UnknownKey passes on)."""
    try:
        found = verify_key(key)
    except DeadKey:
        cache.bury(digest)
        return None
    if found is not None:
        cache.vouch(digest)
    return found


def add_rate_limit_headers(response):
    limit = g.get("rate_limit")
    if limit is not None:
        response.headers.update(limit.headers())
    return response


def forget_tenant(_exc: BaseException | None) -> None:
    # The session is removed at app-context teardown; drop the tenant without the switch guard.
    forget_current_tenant()


def load_user(session_id: str):
    """Load the signed-in user of this tenant if the cookie's session version is still current."""
    from app.people.models import User
    tenant = current_tenant_or_none()
    if tenant is None:
        return None
    if session.get("tenant") != tenant.slug:
        if session.get("tenant"):
            cross_tenant_attempt("session", session_id.partition(":")[0], session["tenant"], tenant.slug)
        return None
    user_id, _, version = session_id.partition(":")
    try:
        user = db.session.get(User, uuid.UUID(user_id))
    except ValueError:
        return None
    if user is None or user.deleted_at is not None or str(user.session_version) != version:
        return None
    return user
