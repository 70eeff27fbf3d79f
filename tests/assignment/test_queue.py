"""The unassigned queue: tickets nobody can take wait, and are handed out as capacity frees."""

import uuid

import pytest
import sqlalchemy as sa

from app.assignment import services
from app.audit.models import AuditEntry
from app.auth.actor import Actor
from app.people.models import User
from app.tickets.models import Ticket


def test_queue_drains_highest_priority_then_oldest_when_a_ticket_closes(desk, run_jobs):
    agent = desk.t.user("agent", name="solo", capacity=1)
    desk.rule(desk.team("Solo", [agent]))
    first = desk.ticket("first")
    run_jobs()
    low_old = desk.ticket("low old", priority="low")
    normal_old = desk.ticket("normal old")
    urgent_new = desk.ticket("urgent new", priority="urgent")
    normal_new = desk.ticket("normal new")
    run_jobs()
    assert desk.get(first)["assignee_id"] == agent["id"]
    assert all(desk.get(t)["assignee_id"] is None for t in (low_old, normal_old, urgent_new, normal_new))

    served = []
    current = first
    for _ in range(4):
        assert desk.t.api.post(f"/api/v1/tickets/{current['id']}/close", json={}).status_code == 200
        run_jobs()
        waiting = [t for t in (low_old, normal_old, urgent_new, normal_new) if t not in served]
        now = [t for t in waiting if desk.get(t)["assignee_id"] == agent["id"]]
        assert len(now) == 1
        served.append(now[0])
        current = now[0]
    assert [t["title"] for t in served] == ["urgent new", "normal old", "normal new", "low old"]
    decision = desk.assignment(served[0])["decision"]
    assert decision["reason"].startswith("From the unassigned queue.")
    assert desk.get(served[-1])["status"] == "open"


def test_queue_drains_when_agent_becomes_available_or_capacity_rises(desk, run_jobs):
    agent = desk.t.user("agent", name="away", available=False, capacity=1)
    desk.rule(desk.team("Team", [agent]))
    tickets = [desk.ticket(f"t{i}") for i in range(3)]
    run_jobs()
    assert all(desk.get(t)["assignee_id"] is None for t in tickets)
    assert desk.t.api.patch(f"/api/v1/users/{agent['id']}", json={"available": True}).status_code == 200
    run_jobs()
    assert [desk.get(t)["assignee_id"] for t in tickets] == [agent["id"], None, None]
    assert desk.t.api.patch(f"/api/v1/users/{agent['id']}", json={"capacity": 3}).status_code == 200
    run_jobs()
    assert [desk.get(t)["assignee_id"] for t in tickets] == [agent["id"]] * 3


def test_queue_drains_when_a_member_joins(desk, run_jobs):
    team = desk.team("Empty", [])
    desk.rule(team)
    ticket = desk.ticket()
    run_jobs()
    assert desk.assignment(ticket)["decision"]["reason"] == "The team has no members."
    (agent,) = desk.agents(1)
    assert desk.t.api.put(f"/api/v1/teams/{team['id']}/members/{agent['id']}").status_code == 200
    run_jobs()
    assert desk.get(ticket)["assignee_id"] == agent["id"]


def test_rule_change_reroutes_queued_tickets(desk, run_jobs):
    (agent,) = desk.agents(1)
    empty = desk.team("Empty", [])
    staffed = desk.team("Staffed", [agent])
    rule = desk.rule(empty, conditions={"tags_any": ["vip"]})
    unmatched = desk.ticket("no tag")
    vip = desk.ticket("vip", tags=["vip"])
    run_jobs()
    assert desk.get(vip)["team_id"] == empty["id"] and desk.get(vip)["assignee_id"] is None
    assert desk.get(unmatched)["team_id"] is None
    resp = desk.t.api.patch(f"/api/v1/assignment-rules/{rule['id']}",
                            json={"team_id": staffed["id"], "conditions": {}})
    assert resp.status_code == 200
    run_jobs()
    assert desk.get(vip)["assignee_id"] == agent["id"]
    assert desk.get(unmatched)["assignee_id"] == agent["id"]
    assert desk.get(vip)["team_id"] == staffed["id"]


def test_a_ticket_routed_into_a_teams_queue_is_announced_and_audited(desk, run_jobs):
    """Routing a waiting ticket into its rule's team (at creation, or moved by a rule change) changed its team
    and version silently: the event feed, webhooks and the audit log never showed the team."""
    empty, other = desk.team("Nobody home", []), desk.team("Nobody either", [])
    rule = desk.rule(empty)
    ticket = desk.ticket()
    run_jobs()
    assert (desk.get(ticket)["team_id"], desk.get(ticket)["assignee_id"]) == (empty["id"], None)
    assert desk.t.api.patch(f"/api/v1/assignment-rules/{rule['id']}", json={"team_id": other["id"]}).status_code == 200
    run_jobs()
    assert desk.get(ticket)["team_id"] == other["id"]

    events = desk.t.api.get("/api/v1/events", query_string={"types": "ticket.updated", "limit": 100}).get_json()
    routed = [e["data"]["ticket"]["team_id"] for e in events["items"]
              if e["data"]["ticket"]["id"] == ticket["id"] and e["data"]["changes"] == ["team_id"]]
    assert routed == [empty["id"], other["id"]]
    audit = desk.t.api.get("/api/v1/audit-events", query_string={"entity_type": "ticket",
                                                                 "entity_id": ticket["id"]}).get_json()
    moves = [(a["before"], a["after"]) for a in audit["items"] if a["action"] == "updated"]
    assert sorted(moves, key=str) == sorted([({"team_id": None}, {"team_id": empty["id"]}),
                                             ({"team_id": empty["id"]}, {"team_id": other["id"]})], key=str)


def test_a_team_chosen_by_hand_before_the_first_assignment_job_holds(desk, run_jobs):
    """The creation job found nobody free in the chosen team and recorded that; its automatic decision then
    counted as the latest, so the pin was lost and the next drain moved the ticket to the rules' team."""
    busy = desk.t.user("agent", name="rules' agent", capacity=0)
    chosen = desk.team("Chosen by hand", [])
    desk.rule(desk.team("Catch-all rule's team", [busy]))
    ticket = desk.ticket()
    resp = desk.t.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"team_id": chosen["id"]})
    assert (resp.status_code, resp.get_json()["assignee_id"]) == (200, None)
    run_jobs()
    assert desk.get(ticket)["team_id"] == chosen["id"]
    assert desk.t.api.patch(f"/api/v1/users/{busy['id']}", json={"capacity": 5}).status_code == 200
    run_jobs()
    assert (desk.get(ticket)["team_id"], desk.get(ticket)["assignee_id"]) == (chosen["id"], None)


def test_new_ticket_does_not_jump_the_queue_of_its_team(desk, run_jobs, in_tenant):
    agent = desk.t.user("agent", name="solo", capacity=0)
    desk.rule(desk.team("Solo", [agent]))
    old = desk.ticket("old")
    run_jobs()
    with in_tenant(desk.t) as session:
        # capacity rises without an event (as if the drain were still on its way) ...
        session.get(User, uuid.UUID(agent["id"])).capacity = 1
        session.commit()
    new = desk.ticket("new", priority="normal")
    run_jobs()
    # ... the new ticket's job serves the older queued ticket of its team first
    assert desk.get(old)["assignee_id"] == agent["id"]
    assert desk.get(new)["assignee_id"] is None


def test_manual_assignment_is_recorded_and_frees_capacity(desk, run_jobs, in_tenant):
    a = desk.t.user("agent", name="a", capacity=1)
    b = desk.t.user("agent", name="b", capacity=5)
    team = desk.team("T", [a])
    desk.rule(team)
    first, second = desk.ticket("first"), desk.ticket("second")
    run_jobs()
    assert desk.get(first)["assignee_id"] == a["id"] and desk.get(second)["assignee_id"] is None
    with in_tenant(desk.t) as session:
        ticket = session.get(Ticket, uuid.UUID(first["id"]))
        previous = ticket.assignee_id
        ticket.assignee_id = uuid.UUID(b["id"])
        services.record_manual_assignment(ticket, ticket.assignee_id, ticket.team_id,
                                          Actor(user_id=uuid.UUID(desk.t.admin_id), role="admin"),
                                          previous_assignee_id=previous)
        session.commit()
    run_jobs()
    why = desk.assignment(first)
    assert why["assignee_id"] == b["id"]
    assert why["decision"]["source"] == "manual" and why["decision"]["chosen_user_id"] == b["id"]
    assert why["decision"]["actor_id"] == desk.t.admin_id
    assert [d["source"] for d in why["history"]] == ["manual", "auto"]
    # a's slot was freed by the reassignment, so the queued ticket went to a
    assert desk.get(second)["assignee_id"] == a["id"]


def test_a_batch_of_new_tickets_does_not_jump_the_queue_of_its_team(desk, run_jobs, in_tenant):
    """One job assigning several new tickets served first only the queued tickets ahead of its most urgent
    one: an older `normal` ticket waited while a new `low` one took the free place."""
    agent = desk.t.user("agent", name="solo", capacity=0)
    desk.rule(desk.team("Solo", [agent]))
    waiting = desk.ticket("normal, waiting")
    run_jobs()
    with in_tenant(desk.t) as session:  # room frees before any drain runs, as when two workers race
        session.execute(sa.update(User).where(User.id == uuid.UUID(agent["id"])).values(capacity=2))
        session.commit()
    urgent, low = desk.ticket("urgent, new", priority="urgent"), desk.ticket("low, new", priority="low")
    run_jobs()  # both new tickets in one batch
    got = {t["title"]: desk.get(t)["assignee_id"] for t in (waiting, urgent, low)}
    assert got == {"normal, waiting": agent["id"], "urgent, new": agent["id"], "low, new": None}, got


def test_another_teams_backlog_does_not_let_a_batch_jump_a_queue(desk, run_jobs, in_tenant, monkeypatch):
    """The queued tickets ahead of a batch were read for all its teams at once, up to `AHEAD_BATCH`: a
    backlog of a team nobody can serve filled the read, and another team's older ticket was passed over."""
    monkeypatch.setattr(services, "AHEAD_BATCH", 3)
    beta_agent = desk.t.user("agent", name="beta", capacity=0)
    alpha, beta = desk.team("Alpha", []), desk.team("Beta", [beta_agent])
    desk.rule(alpha, position=0, conditions={"keywords_any": ["alpha"]})
    desk.rule(beta, position=1)
    waiting = desk.ticket("beta waiting")
    run_jobs()
    for n in range(3):
        desk.ticket(f"alpha stuck {n}", priority="urgent")
    run_jobs()
    with in_tenant(desk.t) as session:  # room frees before any drain runs
        session.execute(sa.update(User).where(User.id == uuid.UUID(beta_agent["id"])).values(capacity=1))
        session.commit()
    desk.ticket("alpha new", priority="low")
    new_beta = desk.ticket("beta new", priority="low")
    run_jobs()  # one batch
    got = {t["title"]: desk.get(t)["assignee_id"] for t in (waiting, new_beta)}
    assert got == {"beta waiting": beta_agent["id"], "beta new": None}, got


def test_patch_and_close_through_the_api_drive_the_queue(desk, run_jobs):
    a = desk.t.user("agent", name="a", capacity=1)
    b = desk.t.user("agent", name="b", capacity=1)
    team, other = desk.team("T", [a]), desk.team("Other", [b])
    desk.rule(team)
    first, second = desk.ticket("first"), desk.ticket("second")
    run_jobs()
    assert desk.get(first)["assignee_id"] == a["id"] and desk.get(second)["assignee_id"] is None
    # closing frees a's slot: the queued ticket goes to a
    assert desk.t.api.post(f"/api/v1/tickets/{first['id']}/close", json={}).status_code == 200
    run_jobs()
    assert desk.get(second)["assignee_id"] == a["id"]
    # taking the assignee off by hand puts it back in its team's queue, where a picks it up again
    resp = desk.t.api.patch(f"/api/v1/tickets/{second['id']}", json={"assignee_id": None})
    assert resp.status_code == 200, resp.get_json()
    run_jobs()
    why = desk.assignment(second)
    assert why["assignee_id"] == a["id"]
    assert [d["source"] for d in why["history"]][:2] == ["auto", "manual"]
    # a team chosen by hand holds over the rules: the ticket waits for that team's agent
    third = desk.ticket("third")
    run_jobs()
    assert desk.get(third)["assignee_id"] is None
    resp = desk.t.api.patch(f"/api/v1/tickets/{third['id']}", json={"team_id": other["id"]})
    assert resp.status_code == 200, resp.get_json()
    run_jobs()
    got = desk.get(third)
    assert (got["team_id"], got["assignee_id"]) == (other["id"], b["id"])
    decision = desk.assignment(third)["decision"]
    assert decision["rule_id"] is None and decision["strategy"] == "least_loaded"


def test_live_event_carries_the_assigned_ticket(app, desk, run_jobs):
    import json

    from app.extensions import redis_client
    from app.realtime import channel
    from tenants.resolution import active_tenant

    (agent,) = desk.agents(1)
    desk.rule(desk.team("T", [agent]))
    ticket = desk.ticket()
    with app.app_context():
        tenant_id = active_tenant(desk.t.slug).id
        pubsub = redis_client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel(str(tenant_id), ticket["id"]))
    run_jobs()
    events = []
    for _ in range(50):
        message = pubsub.get_message(timeout=0.1)
        if message:
            events.append(json.loads(message["data"]))
        elif events:
            break
    pubsub.close()
    assert [e["type"] for e in events] == ["ticket.updated"]
    body = events[0]["ticket"]
    assert (body["id"], body["assignee_id"], body["status"]) == (ticket["id"], agent["id"], "open")
    assert body == desk.get(ticket)


def _three_tickets_of(desk, run_jobs, leaving):
    """An open, a pending and a resolved ticket, each assigned to `leaving`."""
    tickets = [desk.ticket(title) for title in ("open one", "pending one", "solved one")]
    run_jobs()
    assert all(desk.get(t)["assignee_id"] == leaving["id"] for t in tickets)
    for ticket, status in zip(tickets[1:], ("pending", "resolved"), strict=True):
        assert desk.t.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"status": status}).status_code == 200
    return tickets


@pytest.mark.parametrize("leaves", ["deactivated", "made a requester"])
def test_an_agent_who_leaves_hands_their_unsolved_tickets_back(desk, run_jobs, in_tenant, leaves):
    leaving, staying = desk.t.user("agent", name="leaving"), desk.t.user("agent", name="staying", available=False)
    desk.rule(desk.team("Desk", [leaving, staying]))
    open_one, pending_one, solved_one = _three_tickets_of(desk, run_jobs, leaving)
    assert desk.t.api.patch(f"/api/v1/users/{staying['id']}", json={"available": True}).status_code == 200

    if leaves == "deactivated":
        assert desk.t.api.delete(f"/api/v1/users/{leaving['id']}").status_code == 204
    else:
        assert desk.t.api.patch(f"/api/v1/users/{leaving['id']}", json={"role": "requester"}).status_code == 200
    pending = desk.get(pending_one)
    assert (pending["assignee_id"], pending["status"]) == (None, "pending")
    assert desk.get(solved_one)["assignee_id"] == leaving["id"]  # who solved it stays on record
    run_jobs()
    reassigned = desk.get(open_one)
    assert (reassigned["assignee_id"], reassigned["status"]) == (staying["id"], "open")
    with in_tenant(desk.t) as session:
        edits = session.execute(sa.select(AuditEntry.entity_id, AuditEntry.after).where(
            AuditEntry.entity == "ticket", AuditEntry.action == "updated")).all()
    assert {(str(i), after.get("assignee_id", "-")) for i, after in edits} >= {
        (open_one["id"], None), (pending_one["id"], None)}


def test_an_agent_made_an_admin_keeps_their_tickets(desk, run_jobs):
    (agent,) = desk.agents(1)
    desk.rule(desk.team("Desk", [agent]))
    ticket = desk.ticket()
    run_jobs()
    assert desk.t.api.patch(f"/api/v1/users/{agent['id']}", json={"role": "admin"}).status_code == 200
    assert desk.get(ticket)["assignee_id"] == agent["id"]


def test_tickets_nobody_free_can_take_do_not_hide_those_behind_them(desk, run_jobs, monkeypatch):
    """The drain read only the first `DRAIN_BATCH` queued tickets: when none of them could be handed out
    (no rule matched them, or their team was busy), the tickets behind them waited for good."""
    monkeypatch.setattr(services, "DRAIN_BATCH", 3)
    billing_agent = desk.t.user("agent", name="billing", available=False, capacity=5)
    sales_agent = desk.t.user("agent", name="sales", available=False, capacity=5)
    desk.rule(desk.team("Billing", [billing_agent]), conditions={"category": ["billing"]})
    desk.rule(desk.team("Sales", [sales_agent]), conditions={"category": ["sales"]})
    unmatched = [desk.ticket(f"no rule {n}") for n in range(4)]
    busy = [desk.ticket(f"sales {n}", category="sales", priority="high") for n in range(4)]
    billing = desk.ticket("billing", category="billing", priority="low")
    run_jobs()
    assert desk.t.api.patch(f"/api/v1/users/{billing_agent['id']}", json={"available": True}).status_code == 200
    run_jobs()
    assert desk.get(billing)["assignee_id"] == billing_agent["id"]
    assert all(desk.get(t)["assignee_id"] is None for t in unmatched + busy)
    assert desk.assignment(billing)["decision"]["reason"].startswith("From the unassigned queue.")


def test_a_long_backlog_of_a_busy_team_hides_no_free_teams_ticket(desk, run_jobs, monkeypatch):
    """Past its reads of the whole queue, the drain stopped: a free team's ticket behind more tickets nobody
    free could take than that waited until the backlog ahead shrank."""
    monkeypatch.setattr(services, "DRAIN_BATCH", 2)
    monkeypatch.setattr(services, "DRAIN_BATCHES", 2)
    busy = desk.t.user("agent", name="busy", available=False)
    agent = desk.t.user("agent", name="away", available=False, capacity=5)
    desk.rule(desk.team("Sales", [busy]), conditions={"category": ["sales"]})
    desk.rule(desk.team("Billing", [agent]), conditions={"category": ["billing"]})
    ahead = [desk.ticket(f"no rule {n}", priority="high") for n in range(3)]
    ahead += [desk.ticket(f"sales {n}", category="sales", priority="high") for n in range(3)]
    billing = desk.ticket("billing", category="billing")  # waits in Billing: the rule matched, the agent away
    run_jobs()
    assert desk.get(billing)["team_id"] is not None and desk.get(billing)["assignee_id"] is None
    assert desk.t.api.patch(f"/api/v1/users/{agent['id']}", json={"available": True}).status_code == 200
    run_jobs()
    assert desk.get(billing)["assignee_id"] == agent["id"]
    assert all(desk.get(t)["assignee_id"] is None for t in ahead)


def test_a_drain_reads_the_whole_queue_no_deeper_than_its_bound(desk, run_jobs, monkeypatch):
    """Past the bound, only tickets already waiting in a free team are read: one no rule matched when it
    came, which a rule added since would send there, waits for a read of the whole queue that reaches it."""
    monkeypatch.setattr(services, "DRAIN_BATCH", 2)
    monkeypatch.setattr(services, "DRAIN_BATCHES", 2)
    agent = desk.t.user("agent", name="away", available=False, capacity=5)
    for n in range(4):
        desk.ticket(f"no rule {n}", priority="high")
    billing = desk.ticket("billing", category="billing")
    run_jobs()
    desk.rule(desk.team("Billing", [agent]), conditions={"category": ["billing"]})
    run_jobs()
    assert desk.t.api.patch(f"/api/v1/users/{agent['id']}", json={"available": True}).status_code == 200
    run_jobs()
    assert desk.get(billing)["assignee_id"] is None  # four tickets ahead, two reads of two, and no team
    monkeypatch.setattr(services, "DRAIN_BATCHES", 3)
    assert desk.t.api.patch(f"/api/v1/users/{agent['id']}", json={"capacity": 6}).status_code == 200
    run_jobs()
    assert desk.get(billing)["assignee_id"] == agent["id"]


def test_a_ticket_edited_while_the_drain_reads_does_not_move_its_place_in_the_queue(app, desk, run_jobs,
                                                                                       monkeypatch):
    """The next read started after the last ticket as the lock refreshed it: a priority lowered meanwhile
    jumped the read past the tickets between, and a lower priority one took the free place."""
    import psycopg

    from tenants import active_tenant

    monkeypatch.setattr(services, "DRAIN_BATCH", 2)
    agent = desk.t.user("agent", name="both", available=False, capacity=1)
    skills, billing = desk.team("Skills", [agent]), desk.team("Billing", [agent])
    desk.rule(skills, "skills", conditions={"category": ["k"]}, required_skills=["klingon"], position=0)
    desk.rule(billing, conditions={"category": ["billing"]}, position=1)
    desk.ticket("x1", category="k", priority="urgent")
    x2 = desk.ticket("x2", category="k", priority="urgent")
    high = desk.ticket("high", category="billing", priority="high")
    low = desk.ticket("low", category="billing", priority="low")
    run_jobs()
    with app.app_context():
        schema = active_tenant(desk.t.slug).ref().schema
    real_routes_for, edited = services.routes_for, []

    def routes_for(tickets, rules):
        if not edited:  # another writer lowers x2 between the drain's read and its lock
            edited.append(True)
            url = app.config["SQLALCHEMY_DATABASE_URI"].replace("+psycopg", "")
            with psycopg.connect(url, autocommit=True) as conn:
                updated = conn.execute(f"UPDATE {schema}.tickets SET priority = 'low'"
                                       " WHERE id = %s", (x2["id"],)).rowcount
                assert updated == 1
        return real_routes_for(tickets, rules)

    monkeypatch.setattr(services, "routes_for", routes_for)
    assert desk.t.api.patch(f"/api/v1/users/{agent['id']}", json={"available": True}).status_code == 200
    run_jobs()
    assert edited and desk.get(high)["assignee_id"] == agent["id"] and desk.get(low)["assignee_id"] is None


def test_a_drain_with_nothing_waiting_takes_no_lock(desk, run_jobs, monkeypatch, in_tenant):
    """Every edit drains the queue; taking the pool's locks when nothing waited held up new tickets'
    assignment under load (the load bench found tickets still unassigned when it ended)."""
    (agent,) = desk.agents(1)
    desk.rule(desk.team("Team", [agent]))
    ticket = desk.ticket()
    run_jobs()
    assert desk.get(ticket)["assignee_id"] == agent["id"]
    monkeypatch.setattr(services, "lock_pool", lambda *a, **k: pytest.fail("the pool was locked"))
    with in_tenant(desk.t):
        assert services.drain() == 0
