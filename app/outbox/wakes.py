"""Wake the outbox relay once a one-statement write has committed, from a thread of the process.

A `NOTIFY` inside the write's own statement took Postgres's notify lock (one for the whole server)
at commit and held it across the commit's WAL flush, so every write that notified committed one at
a time, where other writes share a flush. Here the write's statement notifies nothing; a thread per
database sends the wakes of the writes that committed meanwhile in one transaction of its own, on a
connection of its own (never one a request waits for), with `synchronous_commit` off: the lock is
held for no flush, and a wake needs no durability. Batches go out at most `PACE` seconds apart, so
a busy process sends at most 20 a second per database, not one per write; the first wake after a
quiet spell goes at once.

A wake can be lost where a `NOTIFY` at commit could not: the process killed before its thread sent
it, or its database unreachable just after the write (each batch tries a new connection once, so a
restart costs the wakes of one batch). Those rows wait for the relay's sweep, which takes what no
wake handed on. A process that exits normally sends what it holds first.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref

import psycopg
import sqlalchemy as sa
from flask import current_app

from app.outbox import WAKE_CHANNEL
from tenants import current_tenant, engine_for, keepalive_args

log = logging.getLogger(__name__)

# Seconds between one batch of wakes and the next: a batch costs the process about a request's work,
# so at 0.01 s a busy web process spent 8 % of its samples sending them.
PACE = 0.05
IDLE_SECONDS = 60.0  # a connection with no wakes for this long is closed (a shard being retired can be dropped)
STATEMENT_TIMEOUT_MS = 5000
NOTIFY = ("SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, slug) "
          "FROM unnest($2::text[]) AS slug")


def wake_relay() -> None:
    """Have the relay woken for the current tenant soon: call it once the tenant's write has committed.

    Never raises: the write is done, and its rows reach the relay's sweep whatever happens here.
    """
    try:
        tenant = current_tenant()
        _senders.add(engine_for(tenant), tenant.slug, current_app.config["DB_CONNECT_TIMEOUT"])
    except Exception:
        log.warning("relay not woken (its sweep will find the rows)", exc_info=True)


class Sender:
    """The slugs waiting to be sent to one database, its connection, and the thread that sends them."""

    def __init__(self, engine: sa.Engine, connect_timeout: float) -> None:
        self.url = engine.url
        # The engine's own reading of its URL (a password with a space in it, say), as its pool connects.
        self._connect_args = engine.dialect.create_connect_args(engine.url)
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()  # guards the slugs and the thread
        self._sending = threading.Lock()  # one send at a time on the connection
        self._due: set[str] = set()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None

    def add(self, slug: str) -> None:
        with self._lock:
            self._due.add(slug)
            if self._thread is None or not self._thread.is_alive():
                self._thread = self._start()
        self._ready.set()

    def _start(self) -> threading.Thread:
        thread = threading.Thread(target=self._send_forever, name=f"relay-wakes {self.url.host}", daemon=True)
        thread.start()
        return thread

    def _send_forever(self) -> None:
        while True:
            if not self._ready.wait(IDLE_SECONDS):
                with self._sending:
                    if self._conn is not None:
                        self._conn.close()
                continue
            self._ready.clear()
            self.send_due()
            time.sleep(PACE)

    def send_due(self) -> None:
        """Send the slugs gathered so far; a failure is logged and leaves them to the sweep, never raised."""
        with self._sending:
            with self._lock:
                slugs, self._due = self._due, set()
            if not slugs:
                return
            try:
                self._notify(sorted(slugs))
            except psycopg.Error as exc:
                log.warning("relay not woken for %d tenants on %s (its sweep will find their rows): %s",
                            len(slugs), self.url.render_as_string(), exc)

    def _notify(self, slugs: list[str]) -> None:
        """Notify on the kept connection, or on a new one if that fails: it may have died with a restart."""
        if self._conn is not None and not self._conn.closed:
            try:
                return self._execute(slugs)
            except psycopg.Error:
                self._conn.close()
        self._conn = self._connect()
        try:
            self._execute(slugs)
        except psycopg.Error:
            self._conn.close()
            raise

    def _execute(self, slugs: list[str]) -> None:
        with psycopg.RawCursor(self._conn) as cursor:
            cursor.execute(NOTIFY, [WAKE_CHANNEL, slugs])

    def _connect(self) -> psycopg.Connection:
        args, kwargs = self._connect_args
        return psycopg.connect(*args, **{**kwargs, "autocommit": True, "connect_timeout": self.connect_timeout,
                                         **keepalive_args(f"-c statement_timeout={STATEMENT_TIMEOUT_MS}")})


class Senders:
    """A `Sender` per database, so a database that is slow or down delays the wakes of its own tenants only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_url: dict[sa.URL, Sender] = {}
        # Each engine's sender, by the engine itself: hashing a URL renders it as text, about 6 µs a write.
        self._by_engine: weakref.WeakKeyDictionary[sa.Engine, Sender] = weakref.WeakKeyDictionary()

    def add(self, engine: sa.Engine, slug: str, connect_timeout: float) -> None:
        sender = self._by_engine.get(engine)
        if sender is None:
            with self._lock:
                sender = self._by_url.setdefault(engine.url, Sender(engine, connect_timeout))
                self._by_engine[engine] = sender
        sender.add(slug)

    def send_due(self) -> None:
        """Send every database's waiting slugs now, from this thread."""
        for sender in list(self._by_url.values()):
            sender.send_due()


_senders = Senders()
_forked_from: list[Senders] = []


def _renew_after_fork() -> None:
    """A forked child has none of its parent's threads, and may have forked while a lock was held. The
    parent's connections are kept, unused: closing one here would end the parent's session too."""
    global _senders
    _forked_from.append(_senders)
    _senders = Senders()


os.register_at_fork(after_in_child=_renew_after_fork)
atexit.register(lambda: _senders.send_due())  # a worker stopping on request sends what it still holds
