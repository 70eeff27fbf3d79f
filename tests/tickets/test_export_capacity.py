"""An export a client reads slowly (or never) must not take the database from everyone else."""

from __future__ import annotations

import pytest

from app import create_app
from tests.helpers import ApiClient, app_config, new_ticket

POOL = {"pool_size": 2, "max_overflow": 0, "pool_timeout": 3, "pool_recycle": 3600}


@pytest.fixture
def small_pool_app(services):
    """A process with a request pool of two connections, as a busy process would have free."""
    return create_app(app_config(services, SQLALCHEMY_ENGINE_OPTIONS=POOL, EXPORT_CONCURRENCY=4))


def _open_export(api: ApiClient):
    """Start an export download and read only its first chunk, like a client that stalls."""
    resp = api.client.get("/api/v1/tickets/export?format=csv", headers={"Authorization": f"Bearer {api.key}"},
                          buffered=False)
    assert resp.status_code == 200
    chunks = iter(resp.response)
    next(chunks)
    return resp


def _head(api: ApiClient):
    """HEAD the export: the headers a GET would answer with now, taking no slot."""
    return api.client.head("/api/v1/tickets/export?format=csv", headers={"Authorization": f"Bearer {api.key}"})


def test_stalled_exports_leave_the_request_pool_to_other_tenants(small_pool_app, make_tenant):
    slow, other = make_tenant(), make_tenant()
    slow_api = ApiClient(small_pool_app.test_client(), slow.key)
    other_api = ApiClient(small_pool_app.test_client(), other.key)
    new_ticket(slow.api, "one")
    stalled = [_open_export(slow_api) for _ in range(2)]
    try:
        assert other_api.get("/api/v1/users").status_code == 200
        assert other_api.post("/api/v1/tickets", json={"title": "still works"}).status_code == 201
    finally:
        for resp in stalled:
            resp.close()


def test_one_export_too_many_is_503_with_retry_after_not_500(small_pool_app, make_tenant, monkeypatch):
    from app.tickets import export

    tenants = [make_tenant() for _ in range(3)]
    apis = [ApiClient(small_pool_app.test_client(), t.key) for t in tenants]
    for t in tenants:
        new_ticket(t.api, "one")
    stalled = [_open_export(api) for api in apis[:2] for _ in range(2)]  # the process's four slots
    try:
        refused = apis[2].get("/api/v1/tickets/export?format=csv")
        assert refused.status_code == 503, refused.status_code
        assert int(refused.headers["Retry-After"]) > 0 and refused.get_json()["code"] == 503
        with monkeypatch.context() as patched:  # refused before any query is made
            patched.setattr(export, "export_select", lambda *_: pytest.fail("a refused HEAD built its query"))
            head = _head(apis[2])
        assert head.status_code == 503 and head.headers["Retry-After"] == refused.headers["Retry-After"]
    finally:
        for resp in stalled:
            resp.close()
    assert apis[2].get("/api/v1/tickets/export?format=csv").status_code == 200  # the slots came back
    assert _head(apis[2]).status_code == 200


def test_one_organizations_exports_take_at_most_half_the_slots(small_pool_app, make_tenant):
    """Else one requester's four stalled downloads made every other organization's export 503."""
    greedy, other = make_tenant(), make_tenant()
    greedy_api, other_api = (ApiClient(small_pool_app.test_client(), t.key) for t in (greedy, other))
    new_ticket(greedy.api, "one")
    new_ticket(other.api, "two")
    stalled = [_open_export(greedy_api) for _ in range(2)]
    try:
        refused = greedy_api.get("/api/v1/tickets/export?format=csv")
        assert refused.status_code == 503 and "2 exports running" in refused.get_json()["message"]
        assert int(refused.headers["Retry-After"]) > 0
        assert _head(greedy_api).status_code == 503 and _head(other_api).status_code == 200
        assert other_api.get("/api/v1/tickets/export?format=csv").status_code == 200
        page = small_pool_app.test_client()
        assert page.post(f"/t/{greedy.slug}/login", data={"email": greedy.admin_email,
                                                          "password": greedy.admin_password}).status_code == 302
        assert page.get(f"/t/{greedy.slug}/admin/export?format=csv").status_code == 503  # the page shares them
        assert page.head(f"/t/{greedy.slug}/admin/export?format=csv").status_code == 503
    finally:
        for resp in stalled:
            resp.close()
    assert greedy_api.get("/api/v1/tickets/export?format=csv").status_code == 200


def test_a_client_that_stops_reading_loses_its_export_and_its_slot(services, make_tenant):
    """A download the client never reads kept its slot for the statement timeout (10 minutes)."""
    import socket
    import time

    from tests.servers import start_gunicorn, stop_gunicorn

    slow = make_tenant()
    big = "x" * 60_000
    for n in range(200):  # 12 MB: more than the kernel's socket buffers hold
        new_ticket(slow.api, f"big {n}", description=big)
    server = start_gunicorn(services, EXPORT_CONCURRENCY="1", EXPORT_SEND_TIMEOUT="1")
    try:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", server.port))
        stalled.sendall(f"GET /api/v1/tickets/export?format=csv HTTP/1.1\r\nHost: localhost\r\n"
                        f"Authorization: Bearer {slow.key}\r\n\r\n".encode())
        url = f"http://127.0.0.1:{server.port}/api/v1/tickets/export?format=csv"

        def status() -> int:
            import urllib.error
            import urllib.request

            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {slow.key}"})
            try:
                with urllib.request.urlopen(request, timeout=30) as resp:
                    resp.read()
                    return resp.status
            except urllib.error.HTTPError as refused:
                return refused.code

        time.sleep(0.5)
        first = status()  # the stalled download holds the organization's one slot, unless it has ended
        deadline = time.monotonic() + 30
        while first != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
            first = status()
        assert first == 200, server.log.read_text()[-3000:]
        stalled.close()
    finally:
        stop_gunicorn(server)
