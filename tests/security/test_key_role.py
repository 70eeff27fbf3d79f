"""A key never acts with more power than its user has now (it once kept an admin's power after demotion)."""

from __future__ import annotations

import pytest

from app import create_app
from tests.helpers import ApiClient, app_config


@pytest.fixture
def second_app(services):
    """Another app on the same Postgres and Redis, standing in for a second web process."""
    return create_app(app_config(services))


def _admin_with_key(tenant) -> tuple[dict, ApiClient]:
    admin = tenant.user("admin")
    return admin, tenant.key_for(admin)


def test_a_demoted_admins_key_acts_as_a_requester(tenant):
    admin, key = _admin_with_key(tenant)
    assert key.get("/api/v1/api-keys").status_code == 200  # cached as admin now
    assert tenant.api.patch(f"/api/v1/users/{admin['id']}", json={"role": "requester"}).status_code == 200
    assert key.get("/api/v1/api-keys").status_code == 403
    assert key.post("/api/v1/api-keys", json={"name": "escape", "role": "admin"}).status_code == 403
    assert key.patch(f"/api/v1/users/{admin['id']}", json={"role": "admin"}).status_code == 403
    assert key.post("/api/v1/users", json={"email": "x@evil.example", "name": "x", "role": "admin"}).status_code == 403
    assert tenant.api.get(f"/api/v1/users/{admin['id']}").get_json()["role"] == "requester"
    ticket = key.post("/api/v1/tickets", json={"title": "still a requester"})
    assert ticket.status_code == 201  # what a requester may do still works


def test_a_key_acts_with_the_lesser_of_its_role_and_its_users(tenant):
    admin, key = _admin_with_key(tenant)
    agent_key = tenant.key_for(admin, role="agent")
    assert tenant.api.patch(f"/api/v1/users/{admin['id']}", json={"role": "agent"}).status_code == 200
    for api in (key, agent_key):
        assert api.get("/api/v1/api-keys").status_code == 403  # admin only
        assert api.get("/api/v1/users").status_code == 200  # staff
    assert tenant.api.patch(f"/api/v1/users/{admin['id']}", json={"role": "admin"}).status_code == 200
    assert key.get("/api/v1/api-keys").status_code == 200
    assert agent_key.get("/api/v1/api-keys").status_code == 403  # a key never exceeds its own role


def test_a_demotion_in_one_process_reaches_another_on_its_next_request(tenant, second_app):
    admin, key = _admin_with_key(tenant)
    elsewhere = ApiClient(second_app.test_client(), key.key)
    for _ in range(3):
        assert elsewhere.get("/api/v1/api-keys").status_code == 200
    assert tenant.api.patch(f"/api/v1/users/{admin['id']}", json={"role": "agent"}).status_code == 200
    assert elsewhere.get("/api/v1/api-keys").status_code == 403


def test_a_deleted_users_keys_stop_everywhere(tenant, second_app):
    admin, key = _admin_with_key(tenant)
    elsewhere = ApiClient(second_app.test_client(), key.key)
    assert elsewhere.get("/api/v1/users").status_code == 200
    assert tenant.api.delete(f"/api/v1/users/{admin['id']}").status_code == 204
    assert elsewhere.get("/api/v1/users").status_code == 401
    assert key.get("/api/v1/users").status_code == 401
