"""A solved ticket keeps an agent who leaves as the record of who solved it; reopened, it does not go back
to them. It was reopened `open` with the departed assignee: in no queue, seen by nobody assigned, and
announced with them as its assignee."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from app.assignment.services import LEFT_REASON
from app.audit.models import AuditEntry
from app.people.models import User
from app.tickets.models import Ticket


def _solved_by_one_who_leaves(desk, run_jobs, leave: str):
    """A ticket the requester opened, solved by `leaving`, who then leaves; `staying` is free in the same team."""
    leaving = desk.t.user("agent", name="leaving")
    staying = desk.t.user("agent", name="staying", available=False)
    desk.rule(desk.team("Desk", [leaving, staying]))
    requester = desk.t.user("requester")
    requester_api = desk.t.key_for(requester)
    ticket = requester_api.post("/api/v1/tickets", json={"title": "Help"}).get_json()
    run_jobs()
    assert desk.get(ticket)["assignee_id"] == leaving["id"]
    assert desk.t.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"status": "resolved"}).status_code == 200
    if leave == "deactivated":
        assert desk.t.api.delete(f"/api/v1/users/{leaving['id']}").status_code == 204
    else:
        assert desk.t.api.patch(f"/api/v1/users/{leaving['id']}", json={"role": "requester"}).status_code == 200
    assert desk.t.api.patch(f"/api/v1/users/{staying['id']}", json={"available": True}).status_code == 200
    run_jobs()
    assert desk.get(ticket)["assignee_id"] == leaving["id"]  # solved: kept as the record
    return ticket, requester_api, leaving, staying


@pytest.mark.parametrize("leave", ["deactivated", "made a requester"])
@pytest.mark.parametrize("how", ["reopened", "answered by its requester"])
def test_a_reopened_ticket_goes_back_to_the_queue_not_to_an_agent_who_left(desk, run_jobs, in_tenant, leave, how):
    ticket, requester_api, _, staying = _solved_by_one_who_leaves(desk, run_jobs, leave)
    if how == "reopened":
        resp = desk.t.api.post(f"/api/v1/tickets/{ticket['id']}/reopen")
        assert resp.status_code == 200
        assert (resp.get_json()["status"], resp.get_json()["assignee_id"]) == ("new", None)
    else:
        assert requester_api.post(f"/api/v1/tickets/{ticket['id']}/messages",
                                  json={"body": "still broken"}).status_code == 201
    assert desk.assignment(ticket)["decision"]["reason"] == LEFT_REASON
    with in_tenant(desk.t) as session:
        reopened = session.execute(sa.select(AuditEntry.after).where(
            AuditEntry.entity_id == uuid.UUID(ticket["id"]), AuditEntry.action == "reopened")).scalar_one()
    assert (reopened["status"], reopened["assignee_id"]) == ("new", None)

    run_jobs()
    now = desk.get(ticket)
    assert (now["status"], now["assignee_id"]) == ("open", staying["id"])


def test_a_solved_ticket_of_one_who_left_set_pending_is_released(desk, run_jobs):
    ticket, _, _, _ = _solved_by_one_who_leaves(desk, run_jobs, "deactivated")
    resp = desk.t.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"status": "pending"})
    assert resp.status_code == 200
    assert (resp.get_json()["status"], resp.get_json()["assignee_id"]) == ("pending", None)
    assert desk.assignment(ticket)["decision"]["reason"] == LEFT_REASON


def test_a_solved_ticket_of_one_who_left_is_not_set_open_without_an_assignee(desk, run_jobs):
    ticket, _, leaving, staying = _solved_by_one_who_leaves(desk, run_jobs, "made a requester")
    resp = desk.t.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"status": "open"})
    assert resp.status_code == 409
    assert "no longer an agent" in resp.get_json()["message"]
    assert (desk.get(ticket)["status"], desk.get(ticket)["assignee_id"]) == ("resolved", leaving["id"])

    resp = desk.t.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"status": "open", "assignee_id": staying["id"]})
    assert resp.status_code == 200
    assert (resp.get_json()["status"], resp.get_json()["assignee_id"]) == ("open", staying["id"])


def test_a_ticket_solved_by_one_still_here_reopens_to_them(desk, run_jobs):
    (agent,) = desk.agents(1)
    desk.rule(desk.team("Desk", [agent]))
    ticket = desk.ticket()
    run_jobs()
    assert desk.t.api.post(f"/api/v1/tickets/{ticket['id']}/close", json={}).status_code == 200
    resp = desk.t.api.post(f"/api/v1/tickets/{ticket['id']}/reopen")
    assert (resp.get_json()["status"], resp.get_json()["assignee_id"]) == ("open", agent["id"])


def test_a_reopen_during_the_leaving_waits_for_it(app, desk, run_jobs, in_tenant):
    """The reopen reads the assignee's row share-locked: while the change that makes them leave is under
    way (here held open, uncommitted), the reopen waits for it, then sees them gone. Read unlocked, it
    saw them still there and reopened the ticket to them."""
    (agent,) = desk.agents(1)
    desk.rule(desk.team("Desk", [agent]))
    ticket = desk.ticket()
    run_jobs()
    assert desk.t.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"status": "resolved"}).status_code == 200

    answers = []
    with in_tenant(desk.t) as session:
        session.execute(sa.update(User).where(User.id == uuid.UUID(agent["id"])).values(role="requester"))
        reopen = threading.Thread(target=lambda: answers.append(app.test_client().post(
            f"/api/v1/tickets/{ticket['id']}/reopen", headers={"Authorization": f"Bearer {desk.t.key}"})))
        reopen.start()
        time.sleep(1)
        assert not answers  # waiting for the row
        session.commit()
    reopen.join(20)
    assert answers and answers[0].status_code == 200
    assert (answers[0].get_json()["status"], answers[0].get_json()["assignee_id"]) == ("new", None)


@pytest.mark.parametrize("first", ["reopen", "leave"])
@pytest.mark.parametrize(("role", "how"), [("agent", "reopened"), ("agent", "answered by its requester"),
                                           ("admin", "reopened")])
def test_a_reopen_racing_a_leaving_and_a_resolve_does_not_deadlock(app, desk, run_jobs, in_tenant, role, how,
                                                                   first):
    """The release takes the person, then their tickets; the reopen took the ticket, then the person. With a
    resolve landing in between, each waited for the other: the deactivation answered 503 (deadlock), and
    the ticket was reopened to the person being removed. An admin's removal also locked every admin's row
    before reading their tickets, the order a release avoids."""
    agent = desk.t.user(role, name="leaving")
    desk.rule(desk.team("Desk", [agent]))
    requester_api = desk.t.key_for(desk.t.user("requester"))
    ticket = requester_api.post("/api/v1/tickets", json={"title": "Help"}).get_json()
    run_jobs()
    assert desk.get(ticket)["assignee_id"] == agent["id"]
    auth = {"Authorization": f"Bearer {desk.t.key}"}
    path, body = f"/api/v1/tickets/{ticket['id']}/reopen", None
    if how != "reopened":
        auth = {"Authorization": f"Bearer {requester_api.key}"}
        path, body = f"/api/v1/tickets/{ticket['id']}/messages", {"body": "still broken"}
    answers = {}
    with in_tenant(desk.t) as session:  # a resolve under way
        session.execute(sa.update(Ticket).where(Ticket.id == uuid.UUID(ticket["id"]))
                        .values(status="resolved", resolved_at=sa.func.now()))
        reopen = threading.Thread(target=lambda: answers.__setitem__("reopen", app.test_client().post(
            path, json=body, headers=auth)))
        leave = threading.Thread(target=lambda: answers.__setitem__("leave", app.test_client().delete(
            f"/api/v1/users/{agent['id']}", headers={"Authorization": f"Bearer {desk.t.key}"})))
        for thread in (reopen, leave) if first == "reopen" else (leave, reopen):
            thread.start()
            time.sleep(1)
        assert not answers
        session.commit()
    reopen.join(30)
    leave.join(30)
    assert {k: v.status_code for k, v in answers.items()} == {"reopen": 200 if body is None else 201, "leave": 204}
    now = desk.get(ticket)
    assert now["assignee_id"] is None and now["status"] in ("new", "open")


@pytest.mark.parametrize("state", ["resolved, then reopened", "open"])
def test_a_ticket_taken_from_one_who_left_is_routed_by_the_rules_again(desk, run_jobs, state):
    """The release was recorded as a team chosen by hand, so the ticket was pinned to its team and served
    least loaded: a rule's required skills no longer held for it."""
    billing = desk.t.user("agent", name="billing", skills=["billing"])
    plain = desk.t.user("agent", name="plain", skills=[], available=False)
    desk.rule(desk.team("Billing", [billing, plain]), "least_loaded", required_skills=["billing"])
    ticket = desk.ticket("invoice wrong")
    run_jobs()
    assert desk.get(ticket)["assignee_id"] == billing["id"]
    if state != "open":
        assert desk.t.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"status": "resolved"}).status_code == 200
    assert desk.t.api.delete(f"/api/v1/users/{billing['id']}").status_code == 204
    assert desk.t.api.patch(f"/api/v1/users/{plain['id']}", json={"available": True}).status_code == 200
    run_jobs()
    if state != "open":
        assert desk.t.api.post(f"/api/v1/tickets/{ticket['id']}/reopen").status_code == 200
        run_jobs()
    now = desk.get(ticket)
    assert (now["status"], now["assignee_id"]) == ("new", None)  # plain, free but without the skill, waits
    decision = desk.assignment(ticket)["decision"]
    assert (decision["source"], decision["reason"], decision["chosen_user_id"]) == ("auto", LEFT_REASON, None)
    skilled = desk.t.user("agent", name="billing too", skills=["billing"])
    assert desk.t.api.put(f"/api/v1/teams/{now['team_id']}/members/{skilled['id']}").status_code == 200
    run_jobs()
    assert desk.get(ticket)["assignee_id"] == skilled["id"]


def test_a_ticket_put_in_a_team_by_hand_stays_there_when_its_assignee_leaves(desk, run_jobs):
    """Recorded as an automatic release, the ticket lost the team a person had chosen for it: the rules sent it
    back to their team, where nobody was free, while a free member of the chosen team waited."""
    a1 = desk.t.user("agent", name="a1", available=False)
    desk.rule(desk.team("A", [a1]))
    b1, b2 = desk.t.user("agent", name="b1"), desk.t.user("agent", name="b2", available=False)
    team_b = desk.team("B", [b1, b2])
    ticket = desk.ticket()
    run_jobs()
    resp = desk.t.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"team_id": team_b["id"], "assignee_id": b1["id"]})
    assert resp.status_code == 200
    assert desk.t.api.delete(f"/api/v1/users/{b1['id']}").status_code == 204
    assert desk.t.api.patch(f"/api/v1/users/{b2['id']}", json={"available": True}).status_code == 200
    run_jobs()
    now = desk.get(ticket)
    assert (now["team_id"], now["assignee_id"]) == (team_b["id"], b2["id"])


def test_a_ticket_assigned_by_hand_while_its_agent_leaves_is_taken_back(app, desk, run_jobs, monkeypatch):
    """The assignee named in a PATCH was read unlocked: a deactivation meanwhile did not wait for it, and the
    ticket was left open with someone who was no longer an agent, in no queue."""
    from app.tickets import services as ticket_services

    leaving, staying = desk.t.user("agent", name="leaving"), desk.t.user("agent", name="staying")
    team = desk.team("Desk", [leaving, staying])
    ticket = desk.ticket()
    checked, go = threading.Event(), threading.Event()
    original = ticket_services._check_people

    def slow_check(changes):
        original(changes)
        if threading.current_thread().name == "patcher":
            checked.set()
            go.wait(20)

    monkeypatch.setattr(ticket_services, "_check_people", slow_check)
    answers = {}
    patcher = threading.Thread(name="patcher", target=lambda: answers.__setitem__("patch", app.test_client().patch(
        f"/api/v1/tickets/{ticket['id']}", json={"assignee_id": leaving["id"], "team_id": team["id"]},
        headers={"Authorization": f"Bearer {desk.t.key}"})))
    patcher.start()
    assert checked.wait(20)
    leave = threading.Thread(target=lambda: answers.__setitem__("leave", app.test_client().delete(
        f"/api/v1/users/{leaving['id']}", headers={"Authorization": f"Bearer {desk.t.key}"})))
    leave.start()
    time.sleep(1)
    go.set()
    patcher.join(30)
    leave.join(30)
    assert {k: v.status_code for k, v in answers.items()} == {"patch": 200, "leave": 204}
    run_jobs()
    assert desk.get(ticket)["assignee_id"] == staying["id"]
