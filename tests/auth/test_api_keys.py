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


@pytest.mark.parametrize("leaves", ["deactivated", "demoted"])
def test_keys_an_admin_made_for_others_end_when_the_admin_leaves_or_is_demoted(tenant, leaves):
    """Else a departing admin keeps admin power through a key made "as" another admin."""
    maker = tenant.user("admin")
    maker_api = tenant.key_for(maker)
    other_admin, agent = tenant.user("admin"), tenant.user("agent")
    made = [maker_api.post("/api/v1/api-keys", json={"name": "CI", "role": role, "user_id": user["id"]})
            for role, user in (("admin", other_admin), ("agent", agent))]
    assert [m.status_code for m in made] == [201, 201]
    stashed = [ApiClient(tenant.api.client, m.get_json()["key"]) for m in made]
    rotated = maker_api.post(f"/api/v1/api-keys/{made[1].get_json()['id']}/rotate", json={"grace_seconds": 600})
    assert rotated.status_code == 201
    stashed.append(ApiClient(tenant.api.client, rotated.get_json()["key"]))
    # a key made "as" the colleague that rotates itself, then mints another: still the departing admin's making
    own = stashed[0].get("/api/v1/api-keys").get_json()["items"]
    made_id = next(k["id"] for k in own if k["id"] == made[0].get_json()["id"])
    itself = stashed[0].post(f"/api/v1/api-keys/{made_id}/rotate", json={"grace_seconds": 0})
    assert itself.status_code == 201
    successor = ApiClient(tenant.api.client, itself.get_json()["key"])
    minted = successor.post("/api/v1/api-keys", json={"name": "more", "role": "admin", "user_id": other_admin["id"]})
    assert minted.status_code == 201
    stashed = [stashed[1], stashed[2], successor, ApiClient(tenant.api.client, minted.get_json()["key"])]
    assert all(api.get("/api/v1/tickets").status_code == 200 for api in stashed)
    # a key the departing admin did not make, for the same people, is untouched
    kept = tenant.key_for(other_admin)
    if leaves == "deactivated":
        assert tenant.api.delete(f"/api/v1/users/{maker['id']}").status_code == 204
    else:
        assert tenant.api.patch(f"/api/v1/users/{maker['id']}", json={"role": "agent"}).status_code == 200
        assert maker_api.get("/api/v1/tickets").status_code == 200  # their own key acts as an agent now
        assert maker_api.get("/api/v1/api-keys").status_code == 403
    assert [api.get("/api/v1/tickets").status_code for api in stashed] == [401, 401, 401, 401]
    assert kept.get("/api/v1/api-keys").status_code == 200


def test_an_admin_demoted_after_making_keys_only_for_themselves_keeps_them_as_their_new_role(tenant):
    maker = tenant.user("admin")
    maker_api = tenant.key_for(maker)
    own = maker_api.post("/api/v1/api-keys", json={"name": "mine", "role": "agent"})
    assert own.status_code == 201
    assert tenant.api.patch(f"/api/v1/users/{maker['id']}", json={"role": "agent"}).status_code == 200
    assert ApiClient(tenant.api.client, own.get_json()["key"]).get("/api/v1/tickets").status_code == 200


def test_revoking_a_key_revokes_the_keys_made_with_it_all_the_way_down(tenant):
    """Else whoever held a key could outlive its revocation by minting another first."""
    admin = tenant.user("admin")
    first = tenant.key_for(admin)
    second = first.post("/api/v1/api-keys", json={"name": "second", "role": "admin"})
    third = ApiClient(tenant.api.client, second.get_json()["key"]).post(
        "/api/v1/api-keys", json={"name": "third", "role": "agent", "user_id": tenant.user("agent")["id"]})
    assert second.status_code == third.status_code == 201
    made = [ApiClient(tenant.api.client, r.get_json()["key"]) for r in (second, third)]
    sibling = tenant.key_for(admin)  # made with the signup's key, not with `first`
    first_id = next(k["id"] for k in tenant.api.get("/api/v1/api-keys?limit=200").get_json()["items"]
                    if k["user_id"] == admin["id"] and k["name"] == "test")
    assert tenant.api.delete(f"/api/v1/api-keys/{first_id}").status_code == 204
    assert [api.get("/api/v1/tickets").status_code for api in (first, *made)] == [401, 401, 401]
    assert sibling.get("/api/v1/tickets").status_code == 200
    # a key rotated with a grace period keeps what it made until it is revoked
    keep = sibling.post("/api/v1/api-keys", json={"name": "kept", "role": "agent"})
    sibling_id = next(k["id"] for k in tenant.api.get("/api/v1/api-keys?limit=200").get_json()["items"]
                      if k["user_id"] == admin["id"] and k["name"] == "test" and k["revoked_at"] is None)
    assert tenant.api.post(f"/api/v1/api-keys/{sibling_id}/rotate", json={"grace_seconds": 600}).status_code == 201
    assert ApiClient(tenant.api.client, keep.get_json()["key"]).get("/api/v1/tickets").status_code == 200


def test_rotating_a_key_moves_the_keys_made_with_it_to_its_successor(tenant):
    """A rotation with no grace revoked every key the old key had made (an integration's key of another
    user among them); with a grace period they escaped any later revocation."""
    admin = tenant.user("admin")
    key = tenant.key_for(admin)
    key_id = next(k["id"] for k in tenant.api.get("/api/v1/api-keys?limit=200").get_json()["items"]
                  if k["user_id"] == admin["id"])
    made = key.post("/api/v1/api-keys", json={"name": "integration", "role": "agent",
                                              "user_id": tenant.user("agent")["id"]})
    integration = ApiClient(tenant.api.client, made.get_json()["key"])
    rotated = tenant.api.post(f"/api/v1/api-keys/{key_id}/rotate", json={"grace_seconds": 0})
    assert rotated.status_code == 201
    assert key.get("/api/v1/tickets").status_code == 401
    assert integration.get("/api/v1/tickets").status_code == 200  # it hangs from the successor now
    assert tenant.api.delete(f"/api/v1/api-keys/{rotated.get_json()['id']}").status_code == 204
    assert integration.get("/api/v1/tickets").status_code == 401


def test_a_key_cannot_rotate_its_maker_nor_make_keys_while_it_is_being_replaced(tenant):
    """Rotating the key it was made with answered 201 with a successor already revoked (the old key's
    revocation took the rotating key, then the successor, along)."""
    admin = tenant.user("admin")
    parent = tenant.key_for(admin)
    parent_id = next(k["id"] for k in tenant.api.get("/api/v1/api-keys?limit=200").get_json()["items"]
                     if k["user_id"] == admin["id"])
    child = ApiClient(tenant.api.client, parent.post("/api/v1/api-keys", json={"name": "c", "role": "admin"})
                      .get_json()["key"])
    refused = child.post(f"/api/v1/api-keys/{parent_id}/rotate", json={"grace_seconds": 0})
    assert refused.status_code == 409 and "made with" in refused.get_json()["message"]
    assert parent.get("/api/v1/tickets").status_code == child.get("/api/v1/tickets").status_code == 200
    assert tenant.api.post(f"/api/v1/api-keys/{parent_id}/rotate", json={"grace_seconds": 600}).status_code == 201
    for resp in (parent.post("/api/v1/api-keys", json={"name": "late", "role": "agent"}),
                 parent.post(f"/api/v1/api-keys/{parent_id}/rotate", json={"grace_seconds": 0})):
        assert resp.status_code == 409 and "being replaced" in resp.get_json()["message"]
    assert parent.get("/api/v1/tickets").status_code == 200  # it still works for its grace period
