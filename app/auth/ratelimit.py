"""Per-key rate limits: a fixed one-minute window counted in Redis.

Counters are disposable (invariant 3), so when Redis is unreachable requests pass unlimited
rather than fail: the limit protects the service, it is not a correctness guarantee.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
from flask import current_app

from app.extensions import redis_client

log = logging.getLogger(__name__)
WINDOW = 60


@dataclass(frozen=True)
class RateLimit:
    limit: int
    remaining: int
    reset: int  # unix time when the window ends

    @property
    def exceeded(self) -> bool:
        return self.remaining < 0

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Reset": str(self.reset),
        }
        if self.exceeded:
            headers["Retry-After"] = str(max(self.reset - int(time.time()), 1))
        return headers


LAST_USED_DAYS = 90


def last_used_key(tenant_id: str, key_id: str) -> str:
    """Return the Redis key holding when an API key was last used (unix seconds)."""
    return f"tms:{tenant_id}:key-used:{key_id}"


def hit_and_read(tenant_id: str, key_id: str, name: str) -> tuple[RateLimit, bytes | None] | None:
    """Count one request for `key_id`, note it as the key's last use, and read the string `name`.

    One round trip for all three. None when Redis cannot be reached.
    """
    limit = current_app.config["RATE_LIMIT_PER_MINUTE"]
    now = int(time.time())
    window = now // WINDOW
    counter = f"tms:{tenant_id}:rl:{key_id}:{window}"
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.incr(counter)
        pipe.expire(counter, WINDOW * 2)
        pipe.set(last_used_key(tenant_id, key_id), now, ex=LAST_USED_DAYS * 86400)
        pipe.get(name)
        replies = pipe.execute()
    except redis.RedisError as exc:
        log.warning("rate limit skipped, Redis unavailable: %s", exc)
        return None
    return RateLimit(limit=limit, remaining=limit - replies[0], reset=(window + 1) * WINDOW), replies[3]


def last_used(tenant_id: str, key_ids: list[str]) -> dict[str, int]:
    """Return when each key was last used (unix seconds), for those used in the last 90 days."""
    if not key_ids:
        return {}
    try:
        values = redis_client().mget([last_used_key(tenant_id, k) for k in key_ids])
    except redis.RedisError:
        return {}
    return {k: int(v) for k, v in zip(key_ids, values, strict=True) if v is not None}
