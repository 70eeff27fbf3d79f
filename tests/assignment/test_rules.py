"""Assignment rules: the contract's CRUD, validation, roles, order, conditions and their cap."""

import contextlib
import threading

import pytest
import sqlalchemy as sa


def test_rule_crud(desk):
    team = desk.team("Billing", [])
    api = desk.t.api
    resp = api.post("/api/v1/assignment-rules", json={
        "name": "Billing", "position": 10, "team_id": team["id"], "strategy": "least_loaded",
        "conditions": {"priority": ["high", "urgent"], "tags_any": ["invoice"], "keywords_any": ["refund"]}})
    assert resp.status_code == 201, resp.get_json()
    rule = resp.get_json()
    assert rule["enabled"] is True and rule["required_skills"] == []
    assert rule["conditions"] == {"priority": ["high", "urgent"], "tags_any": ["invoice"], "keywords_any": ["refund"]}
    assert api.get(f"/api/v1/assignment-rules/{rule['id']}").get_json()["name"] == "Billing"
    resp = api.patch(f"/api/v1/assignment-rules/{rule['id']}", json={"enabled": False, "position": 1})
    assert resp.status_code == 200 and resp.get_json()["enabled"] is False
    listed = api.get("/api/v1/assignment-rules").get_json()
    assert [r["id"] for r in listed["items"]] == [rule["id"]] and listed["next_cursor"] is None
    assert api.delete(f"/api/v1/assignment-rules/{rule['id']}").status_code == 204
    assert api.get(f"/api/v1/assignment-rules/{rule['id']}").status_code == 404


def test_rules_list_in_position_order_with_cursor(desk):
    team = desk.team("T", [])
    ids = [desk.rule(team, name=f"r{p}", position=p)["id"] for p in (30, 10, 20)]
    first = desk.t.api.get("/api/v1/assignment-rules?limit=2").get_json()
    rest = desk.t.api.get(f"/api/v1/assignment-rules?limit=2&cursor={first['next_cursor']}").get_json()
    assert [r["id"] for r in first["items"] + rest["items"]] == [ids[1], ids[2], ids[0]]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize("body, field", [
    ({"strategy": "random"}, "strategy"),
    ({"team_id": "not-a-uuid"}, "team_id"),
    ({"team_id": "00000000-0000-0000-0000-000000000000"}, "team_id"),
    ({"conditions": {"priority": ["asap"]}}, "conditions.priority.0"),
    ({"conditions": {"colour": ["red"]}}, "conditions.colour"),
    ({"strategy": "skills"}, "required_skills"),
    ({"position": 10**12}, "position"),
    ({"name": ""}, "name"),
])
def test_bad_rules_answer_422_and_change_nothing(desk, body, field):
    """Bad values, and a well-formed team id that names no team, answer 422 naming the field."""
    team = desk.team("T", [])
    base = {"name": "r", "position": 0, "team_id": team["id"], "strategy": "round_robin"}
    resp = desk.t.api.post("/api/v1/assignment-rules", json={**base, **body})
    assert resp.status_code == 422, resp.get_json()
    assert field in resp.get_json()["errors"]
    assert desk.t.api.get("/api/v1/assignment-rules").get_json()["items"] == []


def test_patch_rejects_skills_without_required_skills(desk):
    rule = desk.rule(desk.team("T", []), "least_loaded")
    resp = desk.t.api.patch(f"/api/v1/assignment-rules/{rule['id']}", json={"strategy": "skills"})
    assert resp.status_code == 422 and "required_skills" in resp.get_json()["errors"]  # the rule has none
    assert desk.t.api.get(f"/api/v1/assignment-rules/{rule['id']}").get_json()["strategy"] == "least_loaded"


def test_malformed_json_is_400(desk):
    resp = desk.t.api.post("/api/v1/assignment-rules", data="{", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400


def test_agents_read_rules_but_only_admins_write(desk):
    team = desk.team("T", [])
    rule = desk.rule(team)
    agent = desk.t.key_for(desk.t.user("agent"))
    requester = desk.t.key_for(desk.t.user("requester"))
    assert agent.get("/api/v1/assignment-rules").status_code == 200
    assert agent.get(f"/api/v1/assignment-rules/{rule['id']}").status_code == 200
    body = {"name": "x", "team_id": team["id"], "strategy": "round_robin"}
    assert agent.post("/api/v1/assignment-rules", json=body).status_code == 403
    assert agent.patch(f"/api/v1/assignment-rules/{rule['id']}", json={"name": "y"}).status_code == 403
    assert agent.delete(f"/api/v1/assignment-rules/{rule['id']}").status_code == 403
    assert requester.get("/api/v1/assignment-rules").status_code == 403
    ticket = desk.ticket()
    assert requester.get(f"/api/v1/tickets/{ticket['id']}/assignment").status_code == 403
    assert agent.get(f"/api/v1/tickets/{ticket['id']}/assignment").status_code == 200


def test_cross_tenant_ids_answer_404(desk, other_tenant):
    team = desk.team("T", [])
    rule = desk.rule(team)
    ticket = desk.ticket()
    other = other_tenant.api
    assert other.get(f"/api/v1/assignment-rules/{rule['id']}").status_code == 404
    assert other.patch(f"/api/v1/assignment-rules/{rule['id']}", json={"name": "x"}).status_code == 404
    assert other.delete(f"/api/v1/assignment-rules/{rule['id']}").status_code == 404
    assert other.get(f"/api/v1/tickets/{ticket['id']}/assignment").status_code == 404
    assert other.get("/api/v1/assignment-rules").get_json()["items"] == []
    # a team of another tenant cannot be named in a rule
    resp = other.post("/api/v1/assignment-rules", json={"name": "x", "team_id": team["id"],
                                                        "strategy": "round_robin"})
    assert resp.status_code == 422 and "team_id" in resp.get_json()["errors"]
    assert desk.t.api.get(f"/api/v1/assignment-rules/{rule['id']}").get_json()["name"] == rule["name"]


def test_unknown_ids_answer_404(desk):
    missing = "00000000-0000-0000-0000-000000000000"
    assert desk.t.api.get(f"/api/v1/assignment-rules/{missing}").status_code == 404
    assert desk.t.api.get(f"/api/v1/tickets/{missing}/assignment").status_code == 404


def test_first_enabled_matching_rule_by_position_wins(desk, run_jobs):
    (a,), (b,), (c,) = desk.agents(1), desk.agents(1), desk.agents(1)
    urgent, billing, general = desk.team("Urgent", [a]), desk.team("Billing", [b]), desk.team("General", [c])
    desk.rule(general, name="catch-all", position=100)
    desk.rule(billing, name="billing", position=20,
              conditions={"category": ["Billing"], "keywords_any": ["refund", "credit card"]})
    desk.rule(urgent, name="urgent", position=10, conditions={"priority": ["urgent"]})
    desk.rule(urgent, name="disabled", position=1, enabled=False)
    cases = {
        "urgent": (desk.ticket("Refund now", category="billing", priority="urgent"), a),
        "billing title": (desk.ticket("Please REFUND me", category="billing"), b),
        "billing phrase": (desk.ticket("Card", description="my Credit  Card was charged", category="Billing"), b),
        "word match only": (desk.ticket("refunded?", category="billing"), c),
        "wrong category": (desk.ticket("refund", category="sales"), c),
    }
    run_jobs()
    for label, (ticket, agent) in cases.items():
        assert desk.get(ticket)["assignee_id"] == agent["id"], label
    assert desk.assignment(cases["urgent"][0])["decision"]["rule_name"] == "urgent"


def test_tags_any_and_no_rule_match(desk, run_jobs):
    (a,) = desk.agents(1)
    desk.rule(desk.team("Hardware", [a]), conditions={"tags_any": ["printer", "laptop"]})
    tagged = desk.ticket("Broken", tags=["Laptop"])
    untagged = desk.ticket("Broken", tags=["desk"])
    run_jobs()
    assert desk.get(tagged)["assignee_id"] == a["id"]
    left = desk.get(untagged)
    assert left["assignee_id"] is None and left["status"] == "new" and left["team_id"] is None
    decision = desk.assignment(untagged)["decision"]
    assert decision["rule_id"] is None and decision["reason"] == "No enabled rule matches this ticket."


def test_repeat_rule_create_with_idempotency_key_creates_once(tenant):
    team = tenant.api.post("/api/v1/teams", json={"name": "Once"}).get_json()
    body = {"name": "All", "position": 1, "conditions": {}, "team_id": team["id"], "strategy": "least_loaded"}
    headers = {"Idempotency-Key": "rule-1"}
    first = tenant.api.post("/api/v1/assignment-rules", json=body, headers=headers)
    again = tenant.api.post("/api/v1/assignment-rules", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json()["id"] == first.get_json()["id"]
    assert len(tenant.api.get("/api/v1/assignment-rules").get_json()["items"]) == 1


def test_a_dry_run_says_where_a_ticket_would_go_and_it_goes_there(desk, run_jobs):
    busy, free = desk.agents(2, capacity=5)
    billing = desk.team("Billing", [busy, free])
    other = desk.team("Other", desk.agents(1))
    desk.rule(other, name="urgent elsewhere", position=0, conditions={"priority": ["urgent"]})
    rule = desk.rule(billing, strategy="least_loaded", name="billing", position=1,
                     conditions={"category": ["billing"]})
    desk.ticket("old", category="billing")
    run_jobs()  # one agent now holds a ticket
    sample = {"title": "Charged twice", "priority": "high", "category": "billing"}
    resp = desk.t.api.post("/api/v1/assignment-rules/dry-run", json={"ticket": sample, "rule_id": rule["id"]})
    assert resp.status_code == 200, resp.get_json()
    dry = resp.get_json()
    assert [(r["name"], r["matches"]) for r in dry["rules"]] == [("urgent elsewhere", False), ("billing", True)]
    assert dry["tested_rule"]["decides"] is True
    assert dry["route"]["team_id"] == billing["id"] and dry["route"]["team_name"] == "Billing"
    assert {c["user_id"]: c["open_tickets"] for c in dry["candidates"]} in (
        {busy["id"]: 1, free["id"]: 0}, {busy["id"]: 0, free["id"]: 1})
    chosen = dry["chosen_user_id"]
    assert [c["chosen"] for c in dry["candidates"] if c["user_id"] == chosen] == [True]
    ticket = desk.ticket(**sample)
    run_jobs()
    assert desk.get(ticket)["assignee_id"] == chosen  # it lands where the dry run said


def test_a_dry_run_changes_nothing_and_answers_unmatched(desk):
    team = desk.team("Support", desk.agents(1))
    desk.rule(team, conditions={"category": ["billing"]})

    def state():
        return [desk.t.api.get(path).get_json() for path in
                ("/api/v1/tickets", "/api/v1/audit-events?limit=200", "/api/v1/teams", "/api/v1/users")]

    before = state()
    dry = desk.t.api.post("/api/v1/assignment-rules/dry-run", json={"ticket": {"title": "x"}}).get_json()
    assert dry["route"] is None and dry["chosen_user_id"] is None and "No enabled rule" in dry["reason"]
    assert state() == before
    assert desk.t.api.post("/api/v1/assignment-rules/dry-run",
                           json={"ticket": {"title": "x"}, "rule_id": str(desk.t.admin_id)}).status_code == 404
    requester = desk.t.key_for(desk.t.user("requester"))
    assert requester.post("/api/v1/assignment-rules/dry-run", json={"ticket": {"title": "x"}}).status_code == 403


def test_concurrent_creates_stop_at_the_cap(app, desk, in_tenant, monkeypatch):
    """Each create counts, then inserts: held together after the insert, all of them saw room for one more.

    The barrier has a timeout, so creates that wait on each other's lock go on one by one after it.
    """
    from app.assignment import services
    from app.assignment.models import AssignmentRule

    team = desk.team("Support", desk.agents(1))
    template = desk.rule(team, name="first")
    with in_tenant(desk.t) as session:
        session.add_all(AssignmentRule(name=f"r{n}", team_id=template["team_id"], strategy=template["strategy"],
                                       position=n, conditions={}, required_skills=[], enabled=True)
                        for n in range(services.MAX_RULES - 3))
        session.commit()
    creates = 8
    barrier = threading.Barrier(creates)
    emit = services.emit

    def held_emit(*args, **kwargs):
        emit(*args, **kwargs)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(2.0)

    monkeypatch.setattr(services, "emit", held_emit)
    statuses: list[int] = []

    def create(n: int) -> None:
        resp = app.test_client().post("/api/v1/assignment-rules", headers={"Authorization": f"Bearer {desk.t.key}"},
                                      json={"name": f"late {n}", "team_id": team["id"], "strategy": "round_robin"})
        statuses.append(resp.status_code)

    workers = [threading.Thread(target=create, args=(n,)) for n in range(creates)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    with in_tenant(desk.t) as session:
        rules = session.execute(sa.select(sa.func.count()).select_from(AssignmentRule)).scalar_one()
    assert sorted(statuses) == [201] * 2 + [409] * (creates - 2), statuses
    assert rules == services.MAX_RULES
