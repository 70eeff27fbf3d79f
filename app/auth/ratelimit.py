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


def hit(key_id: str) -> RateLimit | None:
    """Count one request for `key_id`; None when Redis cannot be reached."""
    counted = hit_and_read(key_id, None)
    return None if counted is None else counted[0]


def hit_and_read(key_id: str, name: str | None) -> tuple[RateLimit, bytes | None] | None:
    """Count one request for `key_id` and read the string `name` in the same round trip.

    None when Redis cannot be reached.
    """
    limit = current_app.config["RATE_LIMIT_PER_MINUTE"]
    window = int(time.time()) // WINDOW
    counter = f"rl:{key_id}:{window}"
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.incr(counter)
        pipe.expire(counter, WINDOW * 2)
        if name is not None:
            pipe.get(name)
        replies = pipe.execute()
    except redis.RedisError as exc:
        log.warning("rate limit skipped, Redis unavailable: %s", exc)
        return None
    value = replies[2] if name is not None else None
    return RateLimit(limit=limit, remaining=limit - replies[0], reset=(window + 1) * WINDOW), value
