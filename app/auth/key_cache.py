"""Remember verified API keys for a few seconds, and drop them the moment any key may have changed.

Checking a key in Postgres costs a round trip on every API request, so each app (one per web
process) keeps the keys it verified, by key hash, tagged with the key generation: a random token
in Redis that every revocation, user deletion, tenant suspension or drop replaces once its
transaction commits. Requests read the generation in the same Redis round trip as their
rate-limit counter and go back to Postgres when it has moved, so a revoked key is refused on the
very next request in every process, with no listener thread and no extra round trip. When Redis
cannot be read the cache is bypassed; if the generation could not be replaced, entries still
expire after `TTL` seconds. An entry is one key's own facts (its tenant included), never shared
between keys, so no tenant's data crosses to another.
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
from tenants import on_registry_change

if TYPE_CHECKING:
    from app.auth.keys import VerifiedKey

log = logging.getLogger(__name__)
GENERATION = "auth:keys:generation"
# Every web process's hub listens here, so open sockets re-check their grant at once.
CHANGED_CHANNEL = "auth:keys:changed"
TTL = 5.0
MAX_ENTRIES = 10_000
KEYS_CHANGED = "keys_changed"
_UNSEEN = object()


@dataclass(frozen=True)
class Entry:
    key: VerifiedKey
    generation: bytes | None
    expires: float


class KeyCache:
    """The verified keys of one app, by key hash, and the last key generation it read from Redis."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.generation: object = _UNSEEN

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

    def clear(self) -> None:
        self.entries.clear()


def init_app(app: Flask) -> None:
    app.extensions["tms_key_cache"] = KeyCache()
    unit_of_work.handle(KEYS_CHANGED, lambda _items: keys_changed())
    on_registry_change(change_on_commit)  # a suspended or dropped tenant's keys stop at once


def key_cache() -> KeyCache:
    """Return this app's key cache."""
    return current_app.extensions["tms_key_cache"]


def change_on_commit() -> None:
    """Note that this transaction changes keys, so every cache is dropped once it commits."""
    unit_of_work.after_commit(KEYS_CHANGED, True)


def keys_changed() -> None:
    """Drop this app's cached keys and make every other process, and every open socket, re-check."""
    key_cache().clear()
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.set(GENERATION, uuid.uuid4().hex)
        pipe.publish(CHANGED_CHANNEL, "1")
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("key generation not replaced, other processes rely on the TTL: %s", exc)


def current_generation() -> bytes | None:
    """Return the key generation now, or None when Redis cannot say (then callers check Postgres)."""
    try:
        return redis_client().get(GENERATION) or b""
    except redis.RedisError:
        return None
