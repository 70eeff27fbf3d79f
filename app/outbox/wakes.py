"""Wake the outbox relay once a one-statement write has committed, from a thread of the process.

A `NOTIFY` inside the write's own statement took Postgres's notify lock at commit and held it across
the commit's WAL flush, so writes that notify committed one at a time on their database (every
tenant of a shard), where other writes share a flush. Sent here instead, a wake is a transaction of
its own that writes nothing (no flush), batched per shard: while one batch is on its way, the next
gathers, and batches go out at most `PACE` seconds apart, so a busy process sends at most 20 a second, not
one per write (the first wake after a quiet spell goes at once). The request pays a set insertion; a
wake lost with a dying process or an unreachable shard leaves its rows to the relay's sweep, as a
lost `NOTIFY` always did.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import psycopg
import sqlalchemy as sa

from app.outbox import WAKE_CHANNEL
from tenants import autocommit_connection, current_tenant, engine_for

log = logging.getLogger(__name__)

# Seconds between one batch of wakes and the next: a batch costs the process about a request's work
# (a pooled connection, a round trip), so at 0.01 s a busy process spent 8 % of its time on wakes.
PACE = 0.05


def wake_relay() -> None:
    """Wake the relay for the current tenant, soon after this returns: call it once the write has committed."""
    tenant = current_tenant()
    _waker.add(engine_for(tenant), tenant.slug)


class Waker:
    """Slugs to wake the relay for, by shard, and the thread that sends them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._due: dict[sa.Engine, set[str]] = {}
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, engine: sa.Engine, slug: str) -> None:
        with self._lock:
            self._due.setdefault(engine, set()).add(slug)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._send_forever, name="relay-wakes", daemon=True)
                self._thread.start()
        self._ready.set()

    def _send_forever(self) -> None:
        while True:
            self._ready.wait()
            self._ready.clear()
            with self._lock:
                due, self._due = self._due, {}
            for engine, slugs in due.items():
                send(engine, slugs)
            time.sleep(PACE)


def send(engine: sa.Engine, slugs: set[str]) -> None:
    """Notify the relay on `engine`'s database for each of `slugs`; a failure is logged, never raised."""
    try:
        with autocommit_connection(engine) as conn, psycopg.RawCursor(conn) as cursor:
            cursor.execute("SELECT pg_notify($1, slug) FROM unnest($2::text[]) AS slug", [WAKE_CHANNEL, sorted(slugs)])
    except Exception as exc:  # the sweep hands these rows on; the thread must live for the next wakes
        log.warning("relay not woken for %s (its sweep will find the rows): %s", ", ".join(sorted(slugs)), exc)


_waker = Waker()


def _renew_after_fork() -> None:
    """A forked child has none of its parent's threads, and may have forked while the lock was held."""
    global _waker
    _waker = Waker()


os.register_at_fork(after_in_child=_renew_after_fork)
