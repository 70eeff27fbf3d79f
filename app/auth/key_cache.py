"""Remember verified API keys for a few seconds, and drop them the moment any key may have changed.

Checking a key in Postgres costs a round trip on every API request, so each app (one per web
process) keeps the keys it verified, by key hash, tagged with their tenant's key generation: a
random token in Redis, one per tenant, that every revocation, role change, user deletion, tenant
suspension or drop in that tenant replaces once its transaction commits. Requests read their
tenant's generation in the same Redis round trip as their rate-limit counter and go back to
Postgres when it has moved, so a revoked key is refused on the very next request in every
process, with no listener thread and no extra round trip. Generations and announcements are per
tenant (invariant 1), so one tenant's changes never cost another tenant's keys or sockets a trip
to Postgres. When Redis cannot be read the cache is bypassed; if the generation could not be
replaced, entries still expire after `TTL` seconds. An entry is one key's own facts (its tenant
included), never shared between keys, so no tenant's data crosses to another.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from flask import Flask, current_app

from app import unit_of_work
from app.extensions import redis_client
from tenants import current_tenant, on_drop, on_registry_change

if TYPE_CHECKING:
    from app.auth.keys import VerifiedKey

log = logging.getLogger(__name__)
GENERATION = "auth:keys:generation:"  # + tenant id
# Every web process's hub listens here (the message is the tenant id), so that tenant's open
# sockets re-check their grant at once.
CHANGED_CHANNEL = "auth:keys:changed"
TTL = 5.0
DROPPED_GENERATION_SECONDS = 86_400  # how long a dropped tenant's last generation stays (`_forget_tenant`)
MAX_ENTRIES = 10_000
KEYS_CHANGED = "keys_changed"
_UNSEEN = object()


@dataclass(frozen=True)
class Entry:
    key: VerifiedKey
    generation: bytes | None
    expires: float


class KeyCache:
    """The verified keys of one app, by key hash, and the last key generation it read per tenant."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.generations: dict[str, bytes | None] = {}  # tenant id -> generation last read
        self.tenant_of_prefix: dict[str, str] = {}  # key prefix -> tenant id, learnt from verified keys
        # Hashes of keys found revoked or expired: refused from then on without a lookup (`DeadKey`).
        self.dead: set[str] = set()
        # Hashes of keys found live, for longer than their entries: an address held back for sending
        # made-up keys still gets these looked up (a prefix alone is no proof: prefixes are listed).
        self.vouched: set[str] = set()

    def bury(self, digest: str) -> None:
        if len(self.dead) >= MAX_ENTRIES:
            self.dead.clear()
        self.dead.add(digest)
        self.vouched.discard(digest)
        self.entries.pop(digest, None)

    def vouch(self, digest: str) -> None:
        if len(self.vouched) >= MAX_ENTRIES:
            self.vouched.clear()
        self.vouched.add(digest)

    def generation_seen(self, prefix: str | None) -> object:
        """Return the generation last read for the tenant of a key prefix (or a marker: none yet)."""
        tenant_id = self.tenant_of_prefix.get(prefix) if prefix else None
        return self.generations.get(tenant_id, _UNSEEN) if tenant_id else _UNSEEN

    def saw(self, prefix: str, tenant_id: str, generation: bytes | None) -> None:
        if len(self.tenant_of_prefix) >= MAX_ENTRIES:
            self.tenant_of_prefix.clear()
        if len(self.generations) >= MAX_ENTRIES:
            self.generations.clear()
        self.tenant_of_prefix[prefix] = tenant_id
        self.generations[tenant_id] = generation

    def get(self, digest: str) -> Entry | None:
        entry = self.entries.get(digest)
        if entry is not None and (entry.expires < time.monotonic() or entry.key.expired()):
            self.entries.pop(digest, None)
            return None
        return entry

    def put(self, digest: str, key: VerifiedKey, generation: bytes | None) -> None:
        if len(self.entries) >= MAX_ENTRIES:
            self.entries.clear()
        self.entries[digest] = Entry(key, generation, time.monotonic() + TTL)

    def clear(self, tenant_ids: set[str]) -> None:
        """Drop the entries of these tenants' keys."""
        for digest, entry in list(self.entries.items()):
            if entry.key.tenant.id in tenant_ids:
                self.entries.pop(digest, None)


def init_app(app: Flask) -> None:
    app.extensions["tms_key_cache"] = KeyCache()
    unit_of_work.handle(KEYS_CHANGED, keys_changed)
    on_registry_change(change_on_commit)  # a suspended or dropped tenant's keys stop at once
    on_drop(_forget_tenant)


def _forget_tenant(tenant_id: str) -> None:
    """Delete everything of a dropped tenant from Redis: every `tms:<tenant id>:` key (counters, caps,
    caches), which would otherwise live out their windows; and replace its key generation with a new
    one that expires long after every cached key would have.

    Deleted, the generation read as the one a tenant whose keys never changed has (none), so other
    processes kept the keys they had cached with none for their seconds: and a tenant signing up
    the freed slug next gets the same schema, where those keys then read and wrote as the old
    tenant's admin. A new generation (at the drop and again once it commits, so no key cached in
    between is taken for good) sends every process to Postgres, where the tenant is gone.
    """
    client = redis_client()
    try:
        client.set(generation_key(tenant_id), uuid.uuid4().hex, ex=DROPPED_GENERATION_SECONDS)
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"tms:{tenant_id}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
    except redis.RedisError as exc:
        log.warning("Redis keys of dropped tenant %s left to expire: %s", tenant_id, exc)


def key_cache() -> KeyCache:
    """Return this app's key cache."""
    return current_app.extensions["tms_key_cache"]


def generation_key(tenant_id: str) -> str:
    """Return the Redis key of a tenant's key generation."""
    return GENERATION + str(tenant_id)


def change_on_commit(tenant_id: str | None = None) -> None:
    """Note that this transaction changes keys of a tenant (default: the current one).

    Once it commits, that tenant's cached keys are dropped everywhere and its sockets re-check.
    """
    unit_of_work.after_commit(KEYS_CHANGED, str(tenant_id or current_tenant().id))


def keys_changed(tenant_ids: list[str]) -> None:
    """Drop this app's cached keys of these tenants and make every other process, and their sockets, re-check."""
    changed = set(tenant_ids)
    key_cache().clear(changed)
    try:
        pipe = redis_client().pipeline(transaction=False)
        for tenant_id in sorted(changed):
            pipe.set(generation_key(tenant_id), uuid.uuid4().hex)
            pipe.publish(CHANGED_CHANNEL, tenant_id)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("key generation not replaced, other processes rely on the TTL: %s", exc)


def current_generation(tenant_id: str) -> bytes | None:
    """Return a tenant's key generation now, or None when Redis cannot say (then callers check Postgres)."""
    try:
        return redis_client().get(generation_key(tenant_id)) or b""
    except redis.RedisError:
        return None
