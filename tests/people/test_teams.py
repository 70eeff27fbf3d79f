"""Teams and membership."""


def test_team_lifecycle_and_members(tenant):
    agent = tenant.user("agent")
    requester = tenant.user("requester")
    team = tenant.api.post("/api/v1/teams", json={"name": "Billing", "description": "Money"}).get_json()
    assert team["member_ids"] == []
    put = tenant.api.put(f"/api/v1/teams/{team['id']}/members/{agent['id']}")
    assert put.status_code == 200 and put.get_json()["member_ids"] == [agent["id"]]
    again = tenant.api.put(f"/api/v1/teams/{team['id']}/members/{agent['id']}")
    assert again.get_json()["member_ids"] == [agent["id"]]
    refused = tenant.api.put(f"/api/v1/teams/{team['id']}/members/{requester['id']}")
    assert refused.status_code == 422 and "user_id" in refused.get_json()["errors"]
    assert tenant.api.get(f"/api/v1/teams/{team['id']}").get_json()["member_ids"] == [agent["id"]]
    renamed = tenant.api.patch(f"/api/v1/teams/{team['id']}", json={"name": "Finance"})
    assert renamed.get_json()["name"] == "Finance"
    assert tenant.api.delete(f"/api/v1/teams/{team['id']}/members/{agent['id']}").status_code == 204
    assert tenant.api.delete(f"/api/v1/teams/{team['id']}/members/{agent['id']}").status_code == 404
    assert tenant.api.delete(f"/api/v1/teams/{team['id']}").status_code == 204
    assert tenant.api.get(f"/api/v1/teams/{team['id']}").status_code == 404


def test_duplicate_team_name_is_409(tenant):
    assert tenant.api.post("/api/v1/teams", json={"name": "Ops"}).status_code == 201
    assert tenant.api.post("/api/v1/teams", json={"name": "ops"}).status_code == 409
    other = tenant.api.post("/api/v1/teams", json={"name": "Other"}).get_json()
    assert tenant.api.patch(f"/api/v1/teams/{other['id']}", json={"name": "OPS"}).status_code == 409


def test_bad_team_input(tenant):
    assert tenant.api.post("/api/v1/teams", json={"name": ""}).status_code == 422
    assert tenant.api.post("/api/v1/teams", json={"name": "x", "members": []}).status_code == 422
    assert tenant.api.get("/api/v1/teams/not-a-uuid").status_code == 404
    assert tenant.api.put("/api/v1/teams/00000000-0000-0000-0000-000000000000/members/"
                          "00000000-0000-0000-0000-000000000000").status_code == 404


def test_a_team_that_rules_route_to_is_not_deleted_until_they_are_changed(tenant):
    """The rules' foreign key deleted them with the team, silently: no audit entry, no re-routing."""
    team = tenant.api.post("/api/v1/teams", json={"name": "Billing"}).get_json()
    other = tenant.api.post("/api/v1/teams", json={"name": "Support"}).get_json()
    rule = tenant.api.post("/api/v1/assignment-rules", json={"name": "Refunds", "team_id": team["id"],
                                                            "strategy": "round_robin"}).get_json()
    refused = tenant.api.delete(f"/api/v1/teams/{team['id']}")
    assert refused.status_code == 409 and "Refunds" in refused.get_json()["message"]
    assert tenant.api.get(f"/api/v1/assignment-rules/{rule['id']}").status_code == 200
    assert tenant.api.get(f"/api/v1/teams/{team['id']}").status_code == 200
    moved = tenant.api.patch(f"/api/v1/assignment-rules/{rule['id']}", json={"team_id": other["id"]})
    assert moved.status_code == 200
    assert tenant.api.delete(f"/api/v1/teams/{team['id']}").status_code == 204
    assert tenant.api.get(f"/api/v1/assignment-rules/{rule['id']}").get_json()["team_id"] == other["id"]


def test_the_tickets_a_deleted_team_leaves_are_each_updated_audited_and_announced(tenant):
    """They lost their team silently: no `ticket.updated` (webhooks, the event feed, live pages), no audit entry."""
    from tests.helpers import new_ticket

    team = tenant.api.post("/api/v1/teams", json={"name": "Billing"}).get_json()
    held = [new_ticket(tenant.api, title) for title in ("open one", "closed one")]
    for ticket in held:
        assert tenant.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"team_id": team["id"]}).status_code == 200
    assert tenant.api.post(f"/api/v1/tickets/{held[1]['id']}/close", json={}).status_code == 200
    bystander = new_ticket(tenant.api, "elsewhere")
    assert tenant.api.delete(f"/api/v1/teams/{team['id']}").status_code == 204
    events = tenant.api.get("/api/v1/events", query_string={"types": "ticket.updated", "limit": 100}).get_json()
    cleared = {e["data"]["ticket"]["id"]: e["data"] for e in events["items"] if e["data"]["changes"] == ["team_id"]}
    assert set(cleared) == {t["id"] for t in held}
    assert all(data["ticket"]["team_id"] is None for data in cleared.values())
    for ticket in held:
        audit = tenant.api.get("/api/v1/audit-events", query_string={"entity_type": "ticket",
                                                                     "entity_id": ticket["id"]}).get_json()
        assert ("updated", {"team_id": team["id"]}, {"team_id": None}) in [
            (a["action"], a["before"], a["after"]) for a in audit["items"]]
    assert bystander["id"] not in cleared


def test_an_agent_demoted_to_requester_leaves_their_teams_and_rejoins_none_when_promoted(tenant):
    agent = tenant.user("agent")
    teams = [tenant.api.post("/api/v1/teams", json={"name": name}).get_json() for name in ("Support", "Sales")]
    for team in teams:
        assert tenant.api.put(f"/api/v1/teams/{team['id']}/members/{agent['id']}").status_code == 200
    assert tenant.api.patch(f"/api/v1/users/{agent['id']}", json={"role": "requester"}).status_code == 200
    for team in teams:
        assert tenant.api.get(f"/api/v1/teams/{team['id']}").get_json()["member_ids"] == []
        audit = tenant.api.get("/api/v1/audit-events", query_string={"entity_type": "team",
                                                                     "entity_id": team["id"]}).get_json()["items"]
        assert audit[0]["action"] == "member_removed" and audit[0]["before"] == {"user_id": agent["id"]}
    assert tenant.api.patch(f"/api/v1/users/{agent['id']}", json={"role": "agent"}).status_code == 200
    assert all(tenant.api.get(f"/api/v1/teams/{t['id']}").get_json()["member_ids"] == [] for t in teams)
