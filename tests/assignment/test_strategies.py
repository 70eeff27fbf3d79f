"""Each strategy picks the agent it promises, and the decision says why."""

from collections import Counter

import pytest


def test_round_robin_gives_three_each_to_three_agents(desk, run_jobs):
    agents = desk.agents(3)
    team = desk.team("Support", agents)
    desk.rule(team, "round_robin")
    tickets = [desk.ticket(f"t{i}") for i in range(9)]
    run_jobs()
    got = [desk.get(t) for t in tickets]
    assert all(t["status"] == "open" for t in got)
    counts = Counter(t["assignee_id"] for t in got)
    assert counts == {a["id"]: 3 for a in agents}
    # strict rotation: each window of three consecutive tickets covers every agent once
    order = [t["assignee_id"] for t in got]
    assert all(len(set(order[i:i + 3])) == 3 for i in range(0, 9, 3))
    decision = desk.assignment(tickets[0])["decision"]
    assert decision["strategy"] == "round_robin" and decision["source"] == "auto"
    assert decision["rule_name"] == "round_robin rule"
    assert len(decision["candidates"]) == 3


@pytest.mark.parametrize("leaves", ["removed from the team", "deactivated", "made a requester"])
def test_round_robin_goes_on_from_the_place_of_a_member_who_left(desk, run_jobs, leaves):
    """The rotation started again at the first member when the one picked last had left: A, B, then A again."""
    a, b, c = (desk.t.user("agent", name=n) for n in "ABC")
    team = desk.team("RR", [a, b, c])
    desk.rule(team, "round_robin")
    got = []
    for i in range(2):
        ticket = desk.ticket(f"t{i}")
        run_jobs()
        got.append(desk.get(ticket)["assignee_id"])
        assert desk.t.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"status": "resolved"}).status_code == 200
    assert got == [a["id"], b["id"]]
    if leaves == "removed from the team":
        assert desk.t.api.delete(f"/api/v1/teams/{team['id']}/members/{b['id']}").status_code == 204
    elif leaves == "deactivated":
        assert desk.t.api.delete(f"/api/v1/users/{b['id']}").status_code == 204
    else:
        assert desk.t.api.patch(f"/api/v1/users/{b['id']}", json={"role": "requester"}).status_code == 200
    run_jobs()
    after = [desk.ticket(f"after {i}") for i in range(3)]
    run_jobs()
    assert [desk.get(t)["assignee_id"] for t in after] == [c["id"], a["id"], c["id"]]
    assert desk.assignment(after[0])["decision"]["reason"] == (
        "Round robin: next in rotation after a member who has left the team.")


def test_least_loaded_picks_fewest_open_then_longest_idle(desk, run_jobs):
    a, b, c = desk.agents(3)
    team = desk.team("Billing", [a, b, c])
    desk.rule(team, "least_loaded")
    first = [desk.ticket(f"warm-up {i}") for i in range(3)]
    run_jobs()
    # all three now hold one ticket; ties go to the longest idle, so the next three repeat that order
    order = [desk.get(t)["assignee_id"] for t in first]
    assert sorted(order) == sorted([a["id"], b["id"], c["id"]])
    # give one agent a second ticket, then the least loaded (others) come first
    nxt = [desk.ticket(f"next {i}") for i in range(3)]
    run_jobs()
    assert [desk.get(t)["assignee_id"] for t in nxt] == order
    decision = desk.assignment(nxt[0])["decision"]
    assert decision["strategy"] == "least_loaded"
    chosen = [c for c in decision["candidates"] if c["chosen"]]
    assert len(chosen) == 1 and chosen[0]["user_id"] == order[0]
    assert {c["open_tickets"] for c in decision["candidates"]} == {1}
    assert "longest idle" in decision["reason"]


def test_least_loaded_prefers_the_agent_with_fewer_open_tickets(desk, run_jobs):
    busy, idle = desk.agents(2)
    team = desk.team("Ops", [busy])
    desk.rule(team, "least_loaded")
    for i in range(3):
        desk.ticket(f"before {i}")
    run_jobs()
    assert desk.t.api.put(f"/api/v1/teams/{team['id']}/members/{idle['id']}").status_code == 200
    run_jobs()
    tickets = [desk.ticket(f"after {i}") for i in range(3)]
    run_jobs()
    # idle holds 0, 1, then 2 open tickets against busy's 3, so idle takes all three
    assert [desk.get(t)["assignee_id"] for t in tickets] == [idle["id"]] * 3


def test_skills_requires_every_skill_then_least_loaded(desk, run_jobs):
    both = desk.t.user("agent", name="both", skills=["billing", "german"])
    also_both = desk.t.user("agent", name="also both", skills=["billing", "german", "sql"])
    only_one = desk.t.user("agent", name="only billing", skills=["billing"])
    team = desk.team("Billing DE", [both, also_both, only_one])
    desk.rule(team, "skills", required_skills=["billing", "german"])
    tickets = [desk.ticket(f"Rechnung {i}") for i in range(4)]
    run_jobs()
    got = [desk.get(t)["assignee_id"] for t in tickets]
    assert only_one["id"] not in got
    assert Counter(got) == {both["id"]: 2, also_both["id"]: 2}
    decision = desk.assignment(tickets[0])["decision"]
    passed = {c["user_id"]: c for c in decision["candidates"]}
    assert passed[only_one["id"]]["eligible"] is False
    assert passed[only_one["id"]]["note"] == "missing skills: german"


@pytest.mark.parametrize("strategy", ["round_robin", "least_loaded"])
def test_required_skills_hold_under_every_strategy(desk, run_jobs, strategy):
    """A rule's skills were shown and accepted, and ignored unless its strategy was `skills`."""
    plain = desk.t.user("agent", name="no french", skills=[])
    french = desk.t.user("agent", name="french", skills=["french"])
    desk.rule(desk.team("FR", [plain, french]), strategy, required_skills=["french"])
    tickets = [desk.ticket(f"bonjour {i}") for i in range(3)]
    run_jobs()
    assert [desk.get(t)["assignee_id"] for t in tickets] == [french["id"]] * 3
    passed = {c["user_id"]: c for c in desk.assignment(tickets[0])["decision"]["candidates"]}
    assert (passed[plain["id"]]["eligible"], passed[plain["id"]]["note"]) == (False, "missing skills: french")


def test_only_available_agents_under_capacity_qualify(desk, run_jobs):
    away = desk.t.user("agent", name="away", available=False)
    full = desk.t.user("agent", name="full", capacity=0)
    free = desk.t.user("agent", name="free", capacity=2)
    team = desk.team("Desk", [away, full, free])
    desk.rule(team, "round_robin")
    tickets = [desk.ticket(f"t{i}") for i in range(3)]
    run_jobs()
    got = [desk.get(t) for t in tickets]
    assert [t["assignee_id"] for t in got] == [free["id"], free["id"], None]
    assert got[2]["status"] == "new"
    assert got[2]["team_id"] == team["id"]
    why = desk.assignment(tickets[2])
    assert why["queued"] is True
    assert why["decision"]["chosen_user_id"] is None
    assert "Nobody free" in why["decision"]["reason"]
    notes = {c["name"]: c["note"] for c in why["decision"]["candidates"]}
    assert notes == {"away": "away", "full": "at capacity (0/0 open)", "free": "at capacity (2/2 open)"}


def test_null_capacity_means_no_limit(desk, run_jobs):
    (agent,) = desk.agents(1)
    team = desk.team("Solo", [agent])
    desk.rule(team, "least_loaded")
    tickets = [desk.ticket(f"t{i}") for i in range(12)]
    run_jobs()
    assert {desk.get(t)["assignee_id"] for t in tickets} == {agent["id"]}
