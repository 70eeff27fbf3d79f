"""Each strategy picks the agent it promises, and the decision says why."""

from collections import Counter


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
