"""Cached API keys: a revocation, user deletion or suspension is seen at once by every process."""

from __future__ import annotations

import socket

import pytest

from app import create_app
from app.auth.key_cache import key_cache
from app.auth.keys import key_digest
from tests.helpers import ApiClient, app_config


@pytest.fixture
def second_app(services):
    """Another app on the same Postgres and Redis, standing in for a second web process."""
    return create_app(app_config(services))


def _cached(app, key: str) -> bool:
    with app.app_context():
        return key_cache().get(key_digest(key)) is not None


def _warm(api: ApiClient, app) -> None:
    for _ in range(3):
        assert api.get("/api/v1/users").status_code == 200
    assert _cached(app, api.key), "the key should be served from the cache by now"


def test_revocation_drops_the_key_from_this_process_before_it_answers(app, tenant):
    body = tenant.api.post("/api/v1/api-keys", json={"name": "temp"}).get_json()
    temp = ApiClient(tenant.api.client, body["key"])
    _warm(temp, app)
    assert tenant.api.delete(f"/api/v1/api-keys/{body['id']}").status_code == 204
    assert not _cached(app, temp.key)
    assert temp.get("/api/v1/users").status_code == 401


def test_a_key_revoked_in_one_process_is_refused_by_another_on_the_next_request(app, second_app, tenant):
    body = tenant.api.post("/api/v1/api-keys", json={"name": "temp"}).get_json()
    elsewhere = ApiClient(second_app.test_client(), body["key"])
    _warm(elsewhere, second_app)
    assert tenant.api.delete(f"/api/v1/api-keys/{body['id']}").status_code == 204
    assert _cached(second_app, elsewhere.key)  # nothing was pushed: the next request finds out
    assert elsewhere.get("/api/v1/users").status_code == 401
    assert elsewhere.get("/api/v1/users").status_code == 401


def test_deleting_a_user_is_seen_by_another_process_at_once(second_app, tenant):
    agent = tenant.user("agent")
    key = tenant.key_for(agent).key
    elsewhere = ApiClient(second_app.test_client(), key)
    _warm(elsewhere, second_app)
    assert tenant.api.delete(f"/api/v1/users/{agent['id']}").status_code == 204
    assert elsewhere.get("/api/v1/users").status_code == 401


def test_suspending_a_tenant_is_seen_by_another_process_at_once(app, second_app, tenant):
    elsewhere = ApiClient(second_app.test_client(), tenant.key)
    _warm(elsewhere, second_app)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["tenants", "suspend", tenant.slug]).exit_code == 0
    assert elsewhere.get("/api/v1/users").status_code == 404
    assert runner.invoke(args=["tenants", "suspend", tenant.slug, "--undo"]).exit_code == 0
    assert elsewhere.get("/api/v1/users").status_code == 200


def test_a_key_cache_shared_by_two_tenants_keeps_each_key_in_its_own_tenant(app, make_tenant):
    first, second = make_tenant(), make_tenant()
    _warm(first.api, app)
    _warm(second.api, app)
    assert first.api.get("/api/v1/users").get_json()["items"][0]["email"] == first.admin_email
    assert second.api.get("/api/v1/users").get_json()["items"][0]["email"] == second.admin_email


def test_without_redis_every_request_checks_the_key_in_postgres(services, tenant):
    with socket.socket() as probe:  # a port nothing listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cut_off = create_app(app_config(services, REDIS_URL=f"redis://127.0.0.1:{port}/0"))
    body = tenant.api.post("/api/v1/api-keys", json={"name": "temp"}).get_json()
    isolated = ApiClient(cut_off.test_client(), body["key"])
    for _ in range(3):
        assert isolated.get("/api/v1/users").status_code == 200
    assert not _cached(cut_off, isolated.key)
    assert tenant.api.delete(f"/api/v1/api-keys/{body['id']}").status_code == 204
    assert isolated.get("/api/v1/users").status_code == 401


def test_a_key_change_in_one_tenant_leaves_other_tenants_keys_cached(app, make_tenant, monkeypatch):
    """Key generations are per tenant: one tenant's admin cannot flush every tenant's cached keys."""
    from app.auth import request_auth

    mine, theirs = make_tenant(), make_tenant()
    _warm(mine.api, app)
    verified = []
    real_verify = request_auth.verify_key
    monkeypatch.setattr(request_auth, "verify_key", lambda key: verified.append(key) or real_verify(key))
    for _ in range(3):  # another tenant revokes keys and changes roles
        temp = theirs.api.post("/api/v1/api-keys", json={"name": "temp"}).get_json()
        assert theirs.api.delete(f"/api/v1/api-keys/{temp['id']}").status_code == 204
    agent = theirs.user("agent")
    assert theirs.api.patch(f"/api/v1/users/{agent['id']}", json={"role": "requester"}).status_code == 200
    verified.clear()
    assert mine.api.get("/api/v1/users").status_code == 200
    assert verified == [], "this tenant's key went back to Postgres because another tenant changed its keys"
    temp = mine.api.post("/api/v1/api-keys", json={"name": "temp"}).get_json()
    assert mine.api.delete(f"/api/v1/api-keys/{temp['id']}").status_code == 204
    assert mine.api.get("/api/v1/users").status_code == 200
    assert verified != [], "a change in this tenant still sends its keys back to Postgres"
