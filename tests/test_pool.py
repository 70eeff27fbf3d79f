"""The database pool serves waiting requests first come, first served (app/pool.py)."""

from __future__ import annotations

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
