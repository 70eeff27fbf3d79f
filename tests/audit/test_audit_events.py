"""`GET /api/v1/audit-events`: admins read who changed what, newest first, filtered, one tenant only."""

from __future__ import annotations

from tests.helpers import new_ticket


def _events(api, **query):
    resp = api.get("/api/v1/audit-events", query_string=query)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_changes_are_listed_newest_first_with_before_and_after(tenant):
    ticket = new_ticket(tenant.api, "Printer")
    assert tenant.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"priority": "urgent"}).status_code == 200
    items = _events(tenant.api, entity_type="ticket", entity_id=ticket["id"])["items"]
    assert [e["action"] for e in items] == ["updated", "created"]
    updated = items[0]
    assert updated["before"] == {"priority": "normal"} and updated["after"] == {"priority": "urgent"}
    assert updated["actor_id"] == tenant.admin_id and updated["api_key_id"]
    assert updated["entity_type"] == "ticket" and updated["entity_id"] == ticket["id"]


def test_filters_and_cursor_paging(tenant):
    agent = tenant.user("agent")
    for name in ("a", "b", "c"):
        tenant.api.post("/api/v1/teams", json={"name": name})
    first = _events(tenant.api, entity_type="team", limit=2)
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = _events(tenant.api, entity_type="team", limit=2, cursor=first["next_cursor"])
    assert [e["after"]["name"] for e in first["items"] + rest["items"]] == ["c", "b", "a"]
    assert _events(tenant.api, action="created", entity_type="user")["items"][0]["entity_id"] == agent["id"]
    assert _events(tenant.api, actor_id=agent["id"])["items"] == []
    stamp = first["items"][0]["created_at"]
    assert all(e["created_at"] < stamp for e in _events(tenant.api, created_before=stamp)["items"])


def test_an_entity_type_the_log_does_not_record_is_refused(tenant):
    """A misspelt type answered an empty log, as if nothing of it had changed."""
    resp = tenant.api.get("/api/v1/audit-events?entity_type=tickets")
    assert resp.status_code == 422 and "entity_type" in resp.get_json()["errors"]
    tenant.api.post("/api/v1/teams", json={"name": "Desk"})
    assert _events(tenant.api, entity_type="team")["items"]


def test_only_admins_read_it_and_never_another_tenants(tenant, other_tenant):
    new_ticket(other_tenant.api, "theirs")
    for role in ("agent", "requester"):
        assert tenant.key_for(tenant.user(role)).get("/api/v1/audit-events").status_code == 403
    assert tenant.api.get("/api/v1/audit-events").status_code == 200
    mine = {e["entity_id"] for e in _events(tenant.api, limit=200)["items"]}
    theirs = {e["entity_id"] for e in _events(other_tenant.api, limit=200)["items"]}
    assert mine and theirs and not mine & theirs
    assert tenant.api.get("/api/v1/audit-events?colour=red").status_code == 422
