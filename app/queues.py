"""RQ queues, one per kind of background work, sharing the app's Redis connection."""

from __future__ import annotations

from rq import Queue, Retry

from app.extensions import redis_client

QUEUES = ("assignment", "media", "webhooks", "default")
# Backoff between retries of a failing job; after the last, it lands in RQ's failed registry.
RETRY = Retry(max=5, interval=[1, 5, 15, 60, 300])


def queue(name: str) -> Queue:
    """Return the named queue on the app's Redis."""
    return Queue(name, connection=redis_client())
