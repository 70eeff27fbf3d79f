"""Per-key rate limits: a fixed one-minute window counted in Redis; signed-in people's page writes
and page-socket messages are counted the same way, per person.

Counters are disposable (invariant 3), so when Redis is unreachable requests pass unlimited
rather than fail: the limit protects the service, it is not a correctness guarantee.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
from flask import current_app
from redis.commands.core import Script

from app import quick_redis
from app.extensions import redis_client

log = logging.getLogger(__name__)
WINDOW = 60


@dataclass(frozen=True)
class RateLimit:
    limit: int
    remaining: int
    reset: int  # unix time when the window ends
    tenant_exceeded: bool = False  # the organization as a whole is over its limit

    @property
    def exceeded(self) -> bool:
        return self.remaining < 0 or self.tenant_exceeded

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(0 if self.tenant_exceeded else max(self.remaining, 0)),
            "X-RateLimit-Reset": str(self.reset),
        }
        if self.exceeded:
            headers["Retry-After"] = str(max(self.reset - int(time.time()), 1))
        return headers


LAST_USED_DAYS = 90


def last_used_key(tenant_id: str, key_id: str) -> str:
    """Return the Redis key holding when an API key was last used (unix seconds)."""
    return f"tms:{tenant_id}:key-used:{key_id}"


# Count a request in its caller's window, and in its tenant's only if the caller's own limit
# (ARGV[2]) let it through: refused requests spent the organization's budget, so one requester
# flooding 429s locked every integration and admin out. Each counter expires after two windows.
_COUNT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local tenant_count
if count <= tonumber(ARGV[2]) then
  tenant_count = redis.call('INCR', KEYS[2])
  if tenant_count == 1 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
else
  tenant_count = tonumber(redis.call('GET', KEYS[2]) or '0')
end
"""
# One call, so one round trip and one reply to parse: count the key's and the tenant's request,
# note the key's last use, read KEYS[4].
HIT_AND_READ = _COUNT + """
redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[4])
return {count, tenant_count, redis.call('GET', KEYS[4])}
"""
_script = Script(None, HIT_AND_READ.encode())  # bytes: no client is needed to hash it


def hit_and_read(tenant_id: str, key_id: str, name: str) -> tuple[RateLimit, bytes | None] | None:
    """Count one request for `key_id` and for its tenant, note the key's last use, and read the string `name`.

    One Lua call for all of it. Each key has `RATE_LIMIT_PER_MINUTE`, and all of a tenant's keys
    together `RATE_LIMIT_PER_TENANT_PER_MINUTE`, so one organization's flood cannot take the
    capacity others need. None when Redis cannot be reached.
    """
    now = int(time.time())
    window = now // WINDOW
    keys = [f"tms:{tenant_id}:rl:{key_id}:{window}", f"tms:{tenant_id}:rl-tenant:{window}",
            last_used_key(tenant_id, key_id), name]
    try:
        count, tenant_count, value = quick_redis.run_script(
            _script, keys, [WINDOW * 2, current_app.config["RATE_LIMIT_PER_MINUTE"], now, LAST_USED_DAYS * 86400])
    except redis.RedisError as exc:
        log.warning("rate limit skipped, Redis unavailable: %s", exc)
        return None
    return _counted(window, count, tenant_count), value


def _counted(window: int, count: int, tenant_count: int) -> RateLimit:
    """Return the limit state after a window's counts: the caller's own and its tenant's."""
    config = current_app.config
    limit = config["RATE_LIMIT_PER_MINUTE"]
    return RateLimit(limit=limit, remaining=limit - count, reset=(window + 1) * WINDOW,
                     tenant_exceeded=tenant_count > config["RATE_LIMIT_PER_TENANT_PER_MINUTE"])


def last_used(tenant_id: str, key_ids: list[str]) -> dict[str, int]:
    """Return when each key was last used (unix seconds), for those used in the last 90 days."""
    if not key_ids:
        return {}
    try:
        values = redis_client().mget([last_used_key(tenant_id, k) for k in key_ids])
    except redis.RedisError:
        return {}
    return {k: int(v) for k, v in zip(key_ids, values, strict=True) if v is not None}


# A signed-in person's writes (page forms, page-socket messages): their count and the tenant's.
HIT_USER = _COUNT + """
return {count, tenant_count}
"""
_user_script = Script(None, HIT_USER.encode())


def hit_user(tenant_id: str, user_id: str) -> RateLimit | None:
    """Count one write by a signed-in person against `RATE_LIMIT_PER_MINUTE` and their tenant's limit.

    Pages and page sockets had no limit, so one person could post as fast as the server would take
    it (each message is rendered once, up to half a second for 64 KiB of dense Markdown). None
    when Redis cannot be reached.
    """
    window = int(time.time()) // WINDOW
    keys = [f"tms:{tenant_id}:rl-user:{user_id}:{window}", f"tms:{tenant_id}:rl-tenant:{window}"]
    try:
        count, tenant_count = _user_script(keys=keys, args=[WINDOW * 2, current_app.config["RATE_LIMIT_PER_MINUTE"]],
                                           client=redis_client())
    except redis.RedisError as exc:
        log.warning("rate limit skipped, Redis unavailable: %s", exc)
        return None
    return _counted(window, count, tenant_count)
