"""The Redis commands of every API request on quick connections: counted after the server forgets the
script or drops the connection, bounded in number, and never shared with a forked child."""

from __future__ import annotations

import redis

from app import create_app, quick_redis
from app.extensions import redis_client
from tests.helpers import ApiClient, app_config


def remaining(api: ApiClient) -> int:
    response = api.get("/api/v1/users")
    assert response.status_code == 200, response.get_json()
    return int(response.headers["X-RateLimit-Remaining"])


def test_requests_are_counted_after_a_script_flush_and_a_dropped_connection(services, make_tenant):
    tenant = make_tenant()
    app = create_app(app_config(services, RATE_LIMIT_PER_MINUTE=100))
    api = ApiClient(app.test_client(), tenant.key)
    first = remaining(api)
    server = redis.Redis.from_url(services.redis_url)
    server.script_flush()  # as after a restart: EVALSHA answers NOSCRIPT, the script is loaded again
    assert remaining(api) == first - 1
    with app.app_context():
        quick = app.extensions["tms_redis_quick"]
        ids = {quick.execute(redis_client(), "CLIENT", "ID") for _ in range(len(quick._idle))}
    assert ids
    for client_id in ids:  # the server closes the idle connection: it is reconnected and the call made once
        server.client_kill_filter(_id=client_id)
    assert remaining(api) == first - 2
    assert remaining(api) == first - 3


def test_at_most_size_connections_are_made_and_more_go_through_the_pool(app, monkeypatch):
    with app.app_context():
        client = redis_client()
        quick = quick_redis.QuickConnections(client.connection_pool, size=1)
        assert quick.execute(client, "PING") == b"PONG"
        assert quick._made == 1 and len(quick._idle) == 1
        quick.execute(client, "ECHO", "again")
        assert quick._made == 1  # the idle one was used again
        held = quick._idle.pop()  # in use by another thread
        sent = []
        monkeypatch.setattr(client, "execute_command", lambda *args: sent.append(args) or b"via the pool")
        assert quick.execute(client, "ECHO", "x") == b"via the pool"
        assert sent == [("ECHO", "x")] and quick._made == 1
        quick._idle.append(held)


def test_a_forked_child_makes_its_own_connections(app, monkeypatch):
    with app.app_context():
        client = redis_client()
        quick = quick_redis.QuickConnections(client.connection_pool)
        quick.execute(client, "PING")
        parents = list(quick._idle)
        monkeypatch.setattr(quick_redis.os, "getpid", lambda: quick._pid + 1)
        quick.execute(client, "PING")
        assert quick._made == 1 and not set(map(id, quick._idle)) & set(map(id, parents))
