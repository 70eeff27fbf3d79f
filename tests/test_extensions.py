"""The app's Redis client under more threads than it has connections."""

from __future__ import annotations

import threading

import redis

from app import create_app
from app.extensions import redis_client
from tests.helpers import app_config


def test_threads_beyond_the_redis_connections_wait_for_one_instead_of_failing(services):
    app = create_app(app_config(services, REDIS_MAX_CONNECTIONS=2))
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def ping_often() -> None:
        with app.app_context():
            client = redis_client()
            start.wait()
            try:
                for _ in range(200):
                    client.ping()
            except redis.RedisError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=ping_often) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    with app.app_context():
        assert redis_client().connection_pool.max_connections == 2
