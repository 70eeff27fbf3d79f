"""The database pool serves waiting requests first come, first served (app/pool.py)."""

from __future__ import annotations

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


def _keepalive(fd: int) -> tuple[int, int, int, int]:
    with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as sock:  # a duplicate; closing it leaves fd open
        return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT))


def test_every_way_to_the_database_keeps_its_connection_alive(app, tenant):
    """A peer lost without a word (a partition, a host gone) fails the connection in about a minute, not two hours."""
    from app.outbox import dispatch
    from app.tickets import export
    from tenants import PRIMARY_SHARD, active_tenant, migrations, schema_for, tenant_context
    from tenants.moves import _connect

    expected = (1, 30, 10, 3)
    with app.app_context():
        with db.engine.connect() as conn:  # the request pools, and the workers' (same options)
            assert _keepalive(conn.connection.dbapi_connection.pgconn.socket) == expected
        listeners = dispatch._listen()  # the relay's LISTEN connections
        try:
            assert [_keepalive(c.pgconn.socket) for c in listeners] == [expected] * len(listeners)
        finally:
            dispatch._close(listeners)
        with _connect(PRIMARY_SHARD) as mover:  # `flask tenants move`
            assert _keepalive(mover.pgconn.socket) == expected
        migrations._init_worker({PRIMARY_SHARD: db.engine.url.render_as_string(hide_password=False)})
        try:  # `flask tenants migrate`'s worker processes
            assert migrations._upgrade_in_worker(PRIMARY_SHARD, schema_for(tenant.slug)) is False  # at head
            raw = migrations._worker_engines[PRIMARY_SHARD].raw_connection()
            assert _keepalive(raw.dbapi_connection.pgconn.socket) == expected
            raw.close()
        finally:
            migrations._worker_engines.pop(PRIMARY_SHARD).dispose()
            migrations._worker_urls.pop(PRIMARY_SHARD)
            migrations._worker_served.pop(PRIMARY_SHARD, None)
        with tenant_context(active_tenant(tenant.slug).ref()):  # exports, from their own pool
            raw = export.open_connection()
            try:
                assert _keepalive(raw.dbapi_connection.pgconn.socket) == expected
            finally:
                raw.close()
