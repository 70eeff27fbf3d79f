"""The Redis commands every API request makes (the key's count and read, a message's live event),
sent on connections kept aside from redis-py's pool.

redis-py's BlockingConnectionPool takes a condition lock, records metrics and polls the socket on
every checkout. With the 16 or so request threads of a loaded web process contending for it, the
checkout and return cost about 55 µs of CPU and the client around them 20 µs more, against 80 µs
for the whole command sent on a connection popped from a deque: 16 threads running the rate
limit's EVALSHA on a Unix socket made 7,000 calls/s through the client and 15,000 this way.

The connections are redis-py's own (its parser, health checks and reconnects); only the keeping is
this module's. Idle ones wait in a deque, whose append and pop are atomic. At most `SIZE` are
made per process; past that a command goes through the client and its pool as before. redis-py
disconnects a connection that fails mid-command, so none goes back holding half a reply. A command
that fails on a lost connection (most often one the server closed while it was idle) is sent once
more on a new one; should the server have run it before the connection broke, it runs twice: a
rate-limit hit counted twice, or a live event the page drops as already shown (by message id).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

import redis
from flask import current_app
from redis.commands.core import Script

from app.extensions import redis_client

SIZE = 32


class QuickConnections:
    """Idle connections of one process to the pool's server, at most `size` made."""

    def __init__(self, pool: redis.ConnectionPool, size: int = SIZE) -> None:
        self.pool = pool
        self.size = size
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        """Begin with no connection, in this process."""
        self._idle: deque[redis.connection.AbstractConnection] = deque()
        self._made = 0
        self._pid = os.getpid()

    def execute(self, client: redis.Redis, *args: Any) -> Any:
        """Send one command and return its reply as the connection parses it (no response callbacks)."""
        if self._pid != os.getpid():  # a forked child must not share its parent's sockets
            self._start()
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self._make()
            if conn is None:
                return client.execute_command(*args)
        try:
            try:
                conn.send_command(*args)
                return conn.read_response()
            except redis.ConnectionError:  # lost (closed while idle, a restart): disconnected, send again
                conn.send_command(*args)
                return conn.read_response()
        finally:
            self._idle.append(conn)

    def _make(self) -> redis.connection.AbstractConnection | None:
        with self._lock:
            if self._made >= self.size:
                return None
            self._made += 1
        return self.pool.connection_class(**self.pool.connection_kwargs)


def _quick(client: redis.Redis) -> QuickConnections:
    """Return this process's quick connections to the app's Redis; threads racing to make them keep
    one (a spare one holds no connection yet)."""
    return current_app.extensions.get("tms_redis_quick") or current_app.extensions.setdefault(
        "tms_redis_quick", QuickConnections(client.connection_pool))


def command(*args: Any) -> Any:
    """Run one Redis command on a quick connection; raises redis.RedisError as the client does."""
    client = redis_client()
    return _quick(client).execute(client, *args)


def run_script(script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """Run a Lua script by its SHA, loading it first if the server does not have it (after a restart)."""
    client = redis_client()
    quick = _quick(client)
    try:
        return quick.execute(client, "EVALSHA", script.sha, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:
        client.script_load(script.script)
        return quick.execute(client, "EVALSHA", script.sha, len(keys), *keys, *args)
