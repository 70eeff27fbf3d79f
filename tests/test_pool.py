"""The database pool serves waiting requests first come, first served (app/pool.py)."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from sqlalchemy.util.queue import Empty

from app.extensions import db
from app.pool import FairQueue, FairQueuePool
from tests.helpers import wait_until


def _waiting(queue: FairQueue, got: list) -> threading.Thread:
    """Start a thread that waits on the queue; return once it is queued."""
    before = len(queue.waiters)
    thread = threading.Thread(target=lambda: got.append(queue.get(True, 60)), daemon=True)
    thread.start()
    wait_until(lambda: len(queue.waiters) == before + 1, "the thread to wait")
    return thread


def test_a_returned_connection_goes_to_the_waiter_not_to_a_newcomer():
    queue = FairQueue(maxsize=1)
    got: list = []
    waiter = _waiting(queue, got)
    queue.put("connection", False)
    with pytest.raises(Empty):
        queue.get(False)  # asks after the return, but the waiter asked first
    waiter.join(60)
    assert got == ["connection"]


def test_waiters_are_served_in_the_order_they_came():
    queue = FairQueue(maxsize=2)
    first: list = []
    second: list = []
    threads = [_waiting(queue, first), _waiting(queue, second)]
    queue.put("a", False)
    queue.put("b", False)
    for thread in threads:
        thread.join(60)
    assert (first, second) == (["a"], ["b"])


def test_a_waiter_that_gives_up_leaves_no_trace():
    queue = FairQueue(maxsize=1)
    with pytest.raises(Empty):
        queue.get(True, 0.01)
    assert not queue.waiters
    queue.put("connection", False)
    assert queue.get(False) == "connection"


def test_the_app_pools_its_connections_fairly(app):
    with app.app_context():
        assert isinstance(db.engine.pool, FairQueuePool)


def _keepalive(conn) -> tuple[int, ...]:
    """Both sides' keepalive settings of a psycopg connection: the socket's options, then the server's."""
    with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:  # a duplicate; closing it leaves the original
        assert sock.family in (socket.AF_INET, socket.AF_INET6), "the tests reach their database over TCP"
        mine = (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT))
    server = tuple(int(conn.execute(f"show {name}").fetchone()[0])
                   for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count"))
    return mine + server


def test_every_way_to_the_database_keeps_its_connection_alive(app, tenant):
    """A peer lost without a word (a partition, a host gone) fails the connection in about a minute, on both sides."""
    from app.outbox import dispatch
    from app.tickets import export
    from tenants import PRIMARY_SHARD, active_tenant, migrations, schema_for, tenant_context
    from tenants.moves import _connect

    expected = (1, 30, 10, 3, 60_000, 30, 10, 3)
    with app.app_context():
        with db.engine.connect() as conn:  # the request pools, and the workers' (same options)
            assert _keepalive(conn.connection.dbapi_connection) == expected
            conn.rollback()
        listener = dispatch._listen_on(db.engine)  # the relay's LISTEN connection of a shard
        try:
            assert _keepalive(listener) == expected
        finally:
            listener.close()
        with _connect(PRIMARY_SHARD) as mover:  # `flask tenants move`
            assert _keepalive(mover) == expected
        migrations._init_worker({PRIMARY_SHARD: db.engine.url.render_as_string(hide_password=False)})
        try:  # `flask tenants migrate`'s worker processes
            assert migrations._upgrade_in_worker(PRIMARY_SHARD, schema_for(tenant.slug)) is False  # at head
            raw = migrations._worker_engines[PRIMARY_SHARD].raw_connection()
            assert _keepalive(raw.dbapi_connection) == expected
            raw.close()
        finally:
            migrations._worker_engines.pop(PRIMARY_SHARD).dispose()
            migrations._worker_urls.pop(PRIMARY_SHARD)
            migrations._worker_served.pop(PRIMARY_SHARD, None)
        with tenant_context(active_tenant(tenant.slug).ref()):  # exports, from their own pool
            raw = export.open_connection()
            try:
                assert _keepalive(raw.raw.dbapi_connection) == expected
            finally:
                raw.close()
