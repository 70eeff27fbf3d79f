"""API-key authentication, key lifecycle and roles."""

import pytest

from tests.helpers import ApiClient


def test_missing_malformed_and_unknown_keys_are_401(tenant):
    client = tenant.api.client
    assert client.get("/api/v1/users").status_code == 401
    for header in ("Bearer", "Basic abc", "Bearer nope", "Bearer tms_000000000000_nothing",
                   f"Bearer {tenant.key}x"):
        resp = client.get("/api/v1/users", headers={"Authorization": header})
        assert resp.status_code == 401, header
        body = resp.get_json()
        assert body["code"] == 401 and body["status"] == "Unauthorized" and body["message"]


def test_key_is_shown_once_and_stored_hashed(tenant, app):
    created = tenant.api.post("/api/v1/api-keys", json={"name": "ci", "role": "agent"})
    assert created.status_code == 201
    body = created.get_json()
    assert body["key"].startswith("tms_") and body["role"] == "agent"
    listed = tenant.api.get("/api/v1/api-keys").get_json()["items"]
    assert all("key" not in item for item in listed)
    assert body["id"] in {item["id"] for item in listed}
    from app.extensions import db
    from tenants.models import ApiKey

    with app.app_context():
        stored = db.session.get(ApiKey, __import__("uuid").UUID(body["id"]))
        assert body["key"] not in (stored.key_hash, stored.prefix)
        assert len(stored.key_hash) == 64


def test_revoked_key_is_refused_at_once(tenant):
    body = tenant.api.post("/api/v1/api-keys", json={"name": "temp"}).get_json()
    temp = ApiClient(tenant.api.client, body["key"])
    assert temp.get("/api/v1/users").status_code == 200
    assert tenant.api.delete(f"/api/v1/api-keys/{body['id']}").status_code == 204
    assert temp.get("/api/v1/users").status_code == 401
    assert tenant.api.delete(f"/api/v1/api-keys/{body['id']}").status_code == 404


def test_roles_are_enforced(tenant):
    agent = tenant.user("agent")
    requester = tenant.user("requester")
    agent_api = tenant.key_for(agent)
    requester_api = tenant.key_for(requester)
    new_user = {"email": "x@example.com", "name": "x", "role": "agent"}
    assert agent_api.post("/api/v1/users", json=new_user).status_code == 403
    assert agent_api.get("/api/v1/users").status_code == 200
    assert agent_api.post("/api/v1/api-keys", json={"name": "k"}).status_code == 403
    assert agent_api.post("/api/v1/teams", json={"name": "t"}).status_code == 403
    assert requester_api.get("/api/v1/users").status_code == 403
    assert requester_api.get("/api/v1/teams").status_code == 403
    assert requester_api.get(f"/api/v1/users/{requester['id']}").status_code == 200
    assert requester_api.get(f"/api/v1/users/{agent['id']}").status_code == 404
    forbidden = agent_api.post("/api/v1/users", json=new_user).get_json()
    assert forbidden["code"] == 403 and forbidden["status"] == "Forbidden"


def test_key_role_cannot_exceed_its_user(tenant):
    agent = tenant.user("agent")
    resp = tenant.api.post("/api/v1/api-keys", json={"name": "k", "role": "admin", "user_id": agent["id"]})
    assert resp.status_code == 422
    assert "role" in resp.get_json()["errors"]
    lower = tenant.api.post("/api/v1/api-keys", json={"name": "k", "role": "requester", "user_id": agent["id"]})
    assert lower.status_code == 201


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "k", "role": "owner"}, {"name": "k", "extra": 1},
                                  {"name": "k", "user_id": "not-a-uuid"}])
def test_bad_key_requests_are_422_and_create_nothing(tenant, body):
    before = len(tenant.api.get("/api/v1/api-keys").get_json()["items"])
    resp = tenant.api.post("/api/v1/api-keys", json=body)
    assert resp.status_code == 422
    assert resp.get_json()["errors"]
    assert len(tenant.api.get("/api/v1/api-keys").get_json()["items"]) == before


def test_deleting_a_user_revokes_their_keys(tenant):
    agent = tenant.user("agent")
    agent_api = tenant.key_for(agent)
    assert agent_api.get("/api/v1/users").status_code == 200
    assert tenant.api.delete(f"/api/v1/users/{agent['id']}").status_code == 204
    assert agent_api.get("/api/v1/users").status_code == 401


def test_the_key_list_says_when_each_key_was_last_used(tenant):
    created = tenant.api.post("/api/v1/api-keys", json={"name": "integration"}).get_json()
    listed = {k["id"]: k for k in tenant.api.get("/api/v1/api-keys").get_json()["items"]}
    assert listed[created["id"]]["last_used_at"] is None
    assert "key" not in listed[created["id"]]
    ApiClient(tenant.api.client, created["key"]).get("/api/v1/tickets")
    listed = {k["id"]: k for k in tenant.api.get("/api/v1/api-keys").get_json()["items"]}
    assert listed[created["id"]]["last_used_at"] is not None
