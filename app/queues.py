"""RQ queues, one per kind of background work, and each tenant's fair share of them.

A tenant may have at most `TENANT_QUEUED_JOBS` jobs waiting or running in a queue. Its burst
beyond that stays in the database (outbox rows, webhook deliveries), where the relay hands it
on as places free up, so one tenant's ten thousand deliveries cannot queue ahead of another
tenant's one. A place is a member of a sorted set per tenant and queue, scored by when its lease
ends; the job gives it back when it finishes, and a lost job's place frees itself with its lease.
Counters are disposable: without Redis there are no queues to share anyway.

A job that meets an outage (its handler raises Unavailable: clamd or the storage unreachable, no
antivirus configured, the worker's temporary folder full) is not failing: it waits for the
dependency with its own retries (`retry_later`), whose waits double from `LATER_FIRST_WAIT` to
`LATER_LONGEST_WAIT` for the queue's budget, instead of spending the few quick retries of `RETRY`
meant for a job that crashed. Unavailable means an outage only: a scan on which clamd gives no
verdict fails its job like a crash and gets `RETRY`, so a file that hangs clamd is not retried for hours.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
from flask import current_app
from rq import Queue, Retry, get_current_job

from app.extensions import redis_client

log = logging.getLogger(__name__)
QUEUES = ("assignment", "media", "webhooks", "default")
# Backoff between retries of a failing job; after the last, it lands in RQ's failed registry.
RETRY = Retry(max=5, interval=[1, 5, 15, 60, 300])
LEASE_SECONDS = 600
# Retries of a job that asked to be retried later; past its queue's budget it lands in the failed registry.
LATER_FIRST_WAIT = 5
LATER_LONGEST_WAIT = 900
LATER_BUDGET = 3600
LATER_BUDGET_SETTINGS = {"media": "MEDIA_SCAN_RETRY_BUDGET"}

# KEYS[1]: the tenant's share of a queue. ARGV: now, lease end, cap, members. Returns the members
# that hold a place: those that held one already (a redelivery), then new ones while places last.
_RESERVE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local free = tonumber(ARGV[3]) - redis.call('ZCARD', KEYS[1])
local placed = {}
for i = 4, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i])
    table.insert(placed, ARGV[i])
  elseif free > 0 then
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i])
    free = free - 1
    table.insert(placed, ARGV[i])
  end
end
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[2]) - tonumber(ARGV[1]) then
  redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(ARGV[2])))
end
return placed
"""
# KEYS[1]: the tenant's share of a queue. ARGV: its lease end, seconds from now, the member. The
# member's place is kept until then, if it still holds one; the share lives at least as long.
_HOLD = """
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
  if redis.call('TTL', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
  end
end
"""


def queue(name: str) -> Queue:
    """Return the named queue on the app's Redis."""
    return Queue(name, connection=redis_client())


def share_key(slug: str, queue_name: str) -> str:
    return f"tms:{slug}:queued:{queue_name}"


def reserve(slug: str, queue_name: str, members: list[str]) -> list[str]:
    """Take places in the tenant's share of a queue; return the members that may be enqueued now."""
    if not members:
        return []
    now = time.time()
    placed = redis_client().eval(_RESERVE, 1, share_key(slug, queue_name), now, now + LEASE_SECONDS,
                                 current_app.config["TENANT_QUEUED_JOBS"], *members)
    return [m.decode() if isinstance(m, bytes) else m for m in placed]


def release(slug: str, queue_name: str, member: str) -> None:
    """Give back a finished job's place; best effort (a place also frees itself with its lease)."""
    try:
        redis_client().zrem(share_key(slug, queue_name), member)
    except redis.RedisError as exc:
        log.info("queue place of %s left to its lease: %s", slug, exc)


@dataclass
class Place:
    """A job's place in its tenant's share of a queue: given back when the job ends, or kept while RQ
    waits to run it again (`keep_for`). A job waiting for its retry is still the tenant's job in the
    queue: given back, the relay handed on the tenant's next rows, which failed in turn, until all of
    its work waited in RQ's schedule outside the share, to enter the queue at once when due."""

    slug: str
    queue_name: str
    member: str
    retry_in: float | None = None

    def keep_for(self, seconds: float) -> None:
        """Keep the place for a retry RQ runs in `seconds` (and a lease after that, for its run)."""
        self.retry_in = seconds

    def give_back(self) -> None:
        """Release the place, or extend its lease over the retry's wait; best effort (a lease ends anyway)."""
        if self.retry_in is None:
            release(self.slug, self.queue_name, self.member)
            return
        seconds = self.retry_in + LEASE_SECONDS
        try:
            redis_client().eval(_HOLD, 1, share_key(self.slug, self.queue_name), time.time() + seconds, seconds,
                                self.member)
        except redis.RedisError as exc:
            log.info("queue place of %s not kept for its retry: %s", self.slug, exc)


def retry_later(queue_name: str, retry_after: int) -> tuple[Retry, int]:
    """Return the RQ retry of a job of the queue that asked to be retried later, and its wait in seconds.

    Each wait doubles the one before (RQ counts the job's retries), and is never shorter than the
    `retry_after` the job asked for; once the waits add up to the queue's budget, RQ moves the job
    to its failed registry.
    """
    setting = LATER_BUDGET_SETTINGS.get(queue_name)
    budget = current_app.config[setting] if setting else LATER_BUDGET
    waits: list[int] = []
    wait = LATER_FIRST_WAIT
    while not waits or sum(waits) < budget:
        waits.append(max(wait, retry_after))
        wait = min(wait * 2, LATER_LONGEST_WAIT)
    job = get_current_job()
    retried = (job.number_of_retries or 0) if job is not None else 0
    wait = waits[min(retried, len(waits) - 1)]
    return Retry(max=len(waits), interval=wait), wait
