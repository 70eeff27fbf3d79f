"""`GET /api/v1/reports/overview`: the dashboard's figures, counted by Postgres, for one tenant only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app import create_app
from tests.helpers import ApiClient, Desk, app_config, new_ticket, post_message


def _overview(api, **query):
    resp = api.get("/api/v1/reports/overview", query_string=query)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_figures_count_backlog_flow_times_load_queue_and_rules(tenant, other_tenant, run_jobs):
    desk = Desk(tenant)
    agent = desk.agents(1, capacity=2)[0]
    team = desk.team("Support", [agent])
    rule = desk.rule(team, name="everything")
    tickets = [new_ticket(tenant.api, f"t{i}", priority=p) for i, p in enumerate(["high", "high", "low", "urgent"])]
    new_ticket(other_tenant.api, "not ours", priority="urgent")
    run_jobs()  # two go to the agent (capacity 2), two wait
    agent_api = tenant.key_for(agent)
    mine = [t for t in tickets if tenant.api.get(f"/api/v1/tickets/{t['id']}").get_json()["assignee_id"]]
    assert post_message(agent_api, mine[0]["id"], body="on it").status_code == 201
    assert tenant.api.post(f"/api/v1/tickets/{mine[1]['id']}/close").status_code == 200
    run_jobs()  # the close frees a slot: one more is handed out

    got = _overview(tenant.api)
    assert got["backlog"]["total"] == 3
    assert sum(got["backlog"]["by_status"].values()) == 3 and got["backlog"]["by_status"]["new"] == 1
    assert sum(got["backlog"]["by_priority"].values()) == 3
    today = datetime.now(UTC).date().isoformat()
    assert got["period"]["to"] == today and got["period"]["from"] == got["flow"][0]["day"]
    assert len(got["flow"]) == 30
    assert got["flow"][-1] == {"day": today, "created": 4, "closed": 1}
    assert got["first_response"]["count"] == 1 and got["first_response"]["median_seconds"] >= 0
    assert got["resolution"]["count"] == 1
    assert [(a["user_id"], a["open_tickets"], a["capacity"]) for a in got["agents"] if a["role"] == "agent"] == [
        (agent["id"], 2, 2)]
    assert got["unassigned"]["count"] == 1 and got["unassigned"]["oldest_created_at"]
    by_rule = {r["rule_name"]: r for r in got["rules"]}
    assert by_rule["everything"]["rule_id"] == rule["id"] and by_rule["everything"]["assigned"] == 3
    assert by_rule["everything"]["waiting"] >= 1
    assert _overview(other_tenant.api)["backlog"]["total"] == 1


def test_periods_are_checked_and_only_admins_read_figures(tenant):
    day = datetime.now(UTC).date()
    assert len(_overview(tenant.api, **{"from": (day - timedelta(days=6)).isoformat()})["flow"]) == 7
    for query in ({"from": day.isoformat(), "to": (day - timedelta(days=1)).isoformat()},
                  {"from": (day - timedelta(days=400)).isoformat()}, {"from": "yesterday"}, {"colour": "red"}):
        assert tenant.api.get("/api/v1/reports/overview", query_string=query).status_code == 422, query
    for role in ("agent", "requester"):
        assert tenant.key_for(tenant.user(role)).get("/api/v1/reports/overview").status_code == 403


def test_figures_are_kept_for_a_few_seconds(services, tenant):
    cached = ApiClient(create_app(app_config(services, DASHBOARD_CACHE_SECONDS=60)).test_client(), tenant.key)
    first = _overview(cached)
    new_ticket(tenant.api, "after the first look")
    assert _overview(cached) == first
    assert _overview(tenant.api)["backlog"]["total"] == first["backlog"]["total"] + 1
