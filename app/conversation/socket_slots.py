"""Caps on open ticket streams per API key, per user and per tenant, counted across every web process.

The tenant's cap keeps one busy organization from taking every socket thread a process has.

Each open socket holds a slot: a member of a Redis sorted set per key and per user, scored by
when its lease ends. The process hub renews the leases of every socket its process holds
(every 15 s, `hub.Hub`), so the slots of a process that died free themselves when their leases
run out. Claiming is one Lua script, so two processes cannot both take the last slot. Counters
are disposable (invariant 3): without Redis, sockets open uncapped rather than not at all.
"""

from __future__ import annotations

import logging
import math
import time
import uuid

import redis
from flask import current_app

from app.auth.actor import Actor
from app.extensions import redis_client
from tenants import TenantRef

log = logging.getLogger(__name__)
LEASE = 60  # seconds: four of the hub's renewals

# KEYS: one sorted set per cap. ARGV: now, lease end, member, then one cap per KEY.
# Returns 0 when the slot was taken in every set, else the 1-based index of the full set.
_CLAIM = """
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
  if redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then return i end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[2], ARGV[3])
  redis.call('EXPIREAT', key, math.ceil(tonumber(ARGV[2])))
end
return 0
"""


class Slot:
    """One socket's place under the caps of its key and its user."""

    def __init__(self, tenant: TenantRef, actor: Actor) -> None:
        self.member = uuid.uuid4().hex
        config = current_app.config
        self.caps: list[tuple[str, int, str]] = [
            (f"tms:{tenant.id}:sockets:user:{actor.user_id}", config["STREAM_MAX_SOCKETS_PER_USER"], "user"),
            (f"tms:{tenant.id}:sockets:tenant", config["STREAM_MAX_SOCKETS_PER_TENANT"], "organization")]
        if actor.api_key_id is not None:
            self.caps.insert(0, (f"tms:{tenant.id}:sockets:key:{actor.api_key_id}",
                                 config["STREAM_MAX_SOCKETS_PER_KEY"], "API key"))
        self.lease = LEASE

    def claim(self) -> str | None:
        """Take the slot; return which cap is full ("API key" or "user") if it cannot be taken."""
        now = time.time()
        try:
            full = redis_client().eval(_CLAIM, len(self.caps), *(name for name, _, _ in self.caps), now,
                                       now + self.lease, self.member, *(cap for _, cap, _ in self.caps))
        except redis.RedisError as exc:
            log.warning("socket caps not checked, Redis unavailable: %s", exc)
            return None
        return self.caps[full - 1][2] if full else None

    def cap_of(self, which: str) -> int:
        return next(cap for _, cap, what in self.caps if what == which)

    def renew_in(self, pipe: redis.client.Pipeline) -> None:
        """Add the commands that extend the lease to a pipeline (the process hub's, for all its sockets at once);
        a slot that was lost is taken back."""
        until = time.time() + self.lease
        for name, _, _ in self.caps:
            pipe.zadd(name, {self.member: until})
            pipe.expireat(name, math.ceil(until))

    def release(self) -> None:
        """Give the slot back (best effort: a slot also frees itself when its lease runs out)."""
        try:
            pipe = redis_client().pipeline(transaction=False)
            for name, _, _ in self.caps:
                pipe.zrem(name, self.member)
            pipe.execute()
        except redis.RedisError as exc:
            log.info("socket slot not given back: %s", exc)
