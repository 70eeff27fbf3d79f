"""An export a client reads slowly (or never) must not take the database from everyone else."""

from __future__ import annotations

import pytest

from app import create_app
from tests.helpers import ApiClient, app_config, new_ticket

POOL = {"pool_size": 2, "max_overflow": 0, "pool_timeout": 3, "pool_recycle": 3600}


@pytest.fixture
def small_pool_app(services):
    """A process with a request pool of two connections, as a busy process would have free."""
    return create_app(app_config(services, SQLALCHEMY_ENGINE_OPTIONS=POOL, EXPORT_CONCURRENCY=2))


def _open_export(api: ApiClient):
    """Start an export download and read only its first chunk, like a client that stalls."""
    resp = api.client.get("/api/v1/tickets/export?format=csv", headers={"Authorization": f"Bearer {api.key}"},
                          buffered=False)
    assert resp.status_code == 200
    chunks = iter(resp.response)
    next(chunks)
    return resp


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


def test_one_export_too_many_is_503_with_retry_after_not_500(small_pool_app, tenant):
    api = ApiClient(small_pool_app.test_client(), tenant.key)
    new_ticket(tenant.api, "one")
    stalled = [_open_export(api) for _ in range(2)]
    try:
        refused = api.get("/api/v1/tickets/export?format=csv")
        assert refused.status_code == 503, refused.status_code
        assert int(refused.headers["Retry-After"]) > 0 and refused.get_json()["code"] == 503
    finally:
        for resp in stalled:
            resp.close()
    assert api.get("/api/v1/tickets/export?format=csv").status_code == 200  # the slots came back
