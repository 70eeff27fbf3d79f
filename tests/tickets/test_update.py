"""Changing tickets: If-Match, status transitions, manual assignment, close and reopen, and what each records."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from app.tickets.models import Ticket
from app.tickets.schemas import TicketSchema, dump_ticket


def _patch(api, ticket, body, etag=None):
    headers = {"If-Match": etag} if etag else None
    return api.patch(f"/api/v1/tickets/{ticket['id']}", json=body, headers=headers)


def test_get_and_by_number_carry_the_same_etag(tenant, new_ticket):
    ticket = new_ticket()
    by_id = tenant.api.get(f"/api/v1/tickets/{ticket['id']}")
    by_number = tenant.api.get(f"/api/v1/tickets/by-number/{ticket['number']}")
    assert by_id.headers["ETag"] == by_number.headers["ETag"] == '"v1"'
    assert by_number.get_json()["id"] == ticket["id"]


def test_get_with_a_current_if_none_match_answers_304(tenant, new_ticket):
    ticket = new_ticket()
    resp = tenant.api.get(f"/api/v1/tickets/{ticket['id']}", headers={"If-None-Match": '"v1"'})
    assert resp.status_code == 304


def test_patch_with_current_etag_changes_and_bumps_the_etag(tenant, new_ticket):
    ticket = new_ticket()
    resp = _patch(tenant.api, ticket, {"title": "Renamed", "priority": "high", "tags": ["b", "a"]}, '"v1"')
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["title"], body["priority"], body["tags"], body["version"]) == ("Renamed", "high", ["a", "b"], 2)
    assert resp.headers["ETag"] == '"v2"'
    assert body["updated_at"] > ticket["updated_at"]


def test_stale_if_match_answers_412_and_changes_nothing(tenant, new_ticket, audit_entries):
    ticket = new_ticket()
    assert _patch(tenant.api, ticket, {"title": "first agent"}, '"v1"').status_code == 200
    resp = _patch(tenant.api, ticket, {"title": "second agent"}, '"v1"')
    assert resp.status_code == 412
    assert resp.headers["ETag"] == '"v2"'
    current = tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()
    assert (current["title"], current["version"]) == ("first agent", 2)
    assert [e.action for e in audit_entries(tenant, ticket["id"])] == ["created", "updated"]


def test_if_match_accepts_lists_and_star(tenant, new_ticket):
    ticket = new_ticket()
    assert _patch(tenant.api, ticket, {"title": "a"}, '"v9", "v1"').status_code == 200
    assert _patch(tenant.api, ticket, {"title": "b"}, 'W/"v2", "v2"').status_code == 200
    assert _patch(tenant.api, ticket, {"title": "c"}, "*").status_code == 200
    assert _patch(tenant.api, ticket, {"title": "d"}, "garbage").status_code == 412
    for empty in ("", " ", ","):  # a list of no tags matches no version (it answered as if none were asked)
        refused = tenant.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"title": "e"}, headers={"If-Match": empty})
        assert refused.status_code == 412
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()["title"] == "c"


@pytest.mark.parametrize("action", ["patch", "close", "reopen"])
def test_a_weak_tag_of_the_current_version_never_matches_if_match(tenant, new_ticket, table_counts, action):
    """If-Match compares strongly (RFC 9110): `W/"v1"` is not the version `"v1"`, so 412 and no change."""
    ticket = new_ticket()
    path = f"/api/v1/tickets/{ticket['id']}"
    if action == "reopen":
        assert tenant.api.post(f"{path}/close").status_code == 200
    version = tenant.api.get(path).get_json()["version"]
    counts = table_counts(tenant)
    weak = {"If-Match": f'W/"v{version}"'}
    if action == "patch":
        resp = tenant.api.patch(path, json={"title": "weak"}, headers=weak)
    else:
        resp = tenant.api.post(f"{path}/{action}", headers=weak)
    assert resp.status_code == 412, resp.get_json()
    assert resp.headers["ETag"] == f'"v{version}"'
    assert tenant.api.get(path).get_json()["version"] == version
    assert table_counts(tenant) == counts


def test_stale_if_match_on_close_answers_412(tenant, new_ticket):
    ticket = new_ticket()
    _patch(tenant.api, ticket, {"title": "moved on"})
    resp = tenant.api.post(f"/api/v1/tickets/{ticket['id']}/close", headers={"If-Match": '"v1"'})
    assert resp.status_code == 412
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()["status"] == "new"


def test_patch_records_audit_events_and_a_live_update(tenant, new_ticket, recorded_events, audit_entries,
                                                      live_events):
    ticket = new_ticket("Before")
    listen = live_events(tenant, ticket["id"])
    resp = _patch(tenant.api, ticket, {"title": "After", "category": "billing"})
    assert resp.status_code == 200
    update = [e for e in audit_entries(tenant, ticket["id"]) if e.action == "updated"]
    assert [(u.before, u.after) for u in update] == [({"title": "Before", "category": None},
                                                       {"title": "After", "category": "billing"})]
    assert recorded_events(tenant)[1:] == [("ticket.updated", {"ticket_id": ticket["id"],
                                                               "fields": ["category", "title"]})]
    events = listen()
    assert [(e["type"], e["ticket"]["title"], e["ticket"]["version"]) for e in events] == [
        ("ticket.updated", "After", 2)]


def test_a_refused_patch_publishes_and_records_nothing(tenant, new_ticket, recorded_events, live_events,
                                                       table_counts):
    ticket = new_ticket()
    listen = live_events(tenant, ticket["id"])
    counts = table_counts(tenant)
    assert _patch(tenant.api, ticket, {"title": "x"}, '"v7"').status_code == 412
    assert listen(timeout=0.5) == []
    assert table_counts(tenant) == counts
    assert [t for t, _ in recorded_events(tenant)] == ["ticket.created"]


def test_an_empty_or_unchanged_patch_changes_nothing(tenant, new_ticket, audit_entries):
    ticket = new_ticket("Same")
    assert _patch(tenant.api, ticket, {}).get_json()["version"] == 1
    assert _patch(tenant.api, ticket, {"title": "Same"}).get_json()["version"] == 1
    assert [e.action for e in audit_entries(tenant, ticket["id"])] == ["created"]


@pytest.mark.parametrize(("body", "field"), [
    ({"title": "x" * 201}, "title"),
    ({"title": " \t "}, "title"),
    ({"description": "d" * (64 * 1024 + 1)}, "description"),
    ({"priority": "asap"}, "priority"),
    ({"status": "closed"}, "status"),
    ({"status": "done"}, "status"),
    ({"number": 5}, "number"),
    ({"requester_id": str(uuid.uuid4())}, "requester_id"),
    ({"assignee_id": "nobody"}, "assignee_id"),
    ({"assignee_id": str(uuid.uuid4())}, "assignee_id"),
    ({"team_id": str(uuid.uuid4())}, "team_id"),
])
def test_bad_patch_answers_422_naming_the_field_and_writes_nothing(tenant, new_ticket, table_counts, body, field):
    """Bad values, and a well-formed id of nothing there, answer 422 naming the field."""
    ticket = new_ticket()
    counts = table_counts(tenant)
    resp = _patch(tenant.api, ticket, body)
    assert resp.status_code == 422, resp.get_json()
    assert field in resp.get_json()["errors"]
    assert table_counts(tenant) == counts
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()["version"] == 1


def test_patch_malformed_json_answers_400(tenant, new_ticket):
    ticket = new_ticket()
    resp = tenant.api.client.patch(f"/api/v1/tickets/{ticket['id']}", data="{", content_type="application/json",
                                   headers={"Authorization": f"Bearer {tenant.key}"})
    assert resp.status_code == 400


# --- assignment --------------------------------------------------------------------------------

def test_assigning_a_new_ticket_opens_it_and_records_the_decision(tenant, new_ticket, recorded_events):
    agent = tenant.user("agent")
    ticket = new_ticket()
    resp = _patch(tenant.api, ticket, {"assignee_id": agent["id"]})
    assert resp.status_code == 200
    assert (resp.get_json()["assignee_id"], resp.get_json()["status"]) == (agent["id"], "open")
    topics = [t for t, _ in recorded_events(tenant)]
    assert topics == ["ticket.created", "ticket.assigned", "ticket.updated"]
    decision = tenant.api.get(f"/api/v1/tickets/{ticket['id']}/assignment").get_json()["decision"]
    assert (decision["source"], decision["chosen_user_id"]) == ("manual", agent["id"])


def test_moving_an_assigned_ticket_to_another_team_announces_no_new_assignment(tenant, new_ticket, recorded_events):
    """A team move kept the assignee, yet sent a second `ticket.assigned` (integrations told the agent twice)."""
    agent = tenant.user("agent")
    first, second = (tenant.api.post("/api/v1/teams", json={"name": n}).get_json() for n in ("First", "Second"))
    ticket = new_ticket()
    assert _patch(tenant.api, ticket, {"assignee_id": agent["id"], "team_id": first["id"]}).status_code == 200
    resp = _patch(tenant.api, ticket, {"team_id": second["id"]})
    assert (resp.status_code, resp.get_json()["assignee_id"]) == (200, agent["id"])
    topics = [t for t, _ in recorded_events(tenant)]
    assert topics == ["ticket.created", "ticket.assigned", "ticket.updated", "ticket.updated"]
    decision = tenant.api.get(f"/api/v1/tickets/{ticket['id']}/assignment").get_json()["decision"]
    assert (decision["team_id"], decision["chosen_user_id"]) == (second["id"], agent["id"])
    assert decision["reason"] == "Moved to another team by hand by a user; the assignee stays."


def test_only_active_staff_can_be_assigned(tenant, new_ticket):
    ticket = new_ticket()
    requester = tenant.user("requester")
    resp = _patch(tenant.api, ticket, {"assignee_id": requester["id"]})
    assert resp.status_code == 422  # the user exists, but cannot take tickets
    assert "assignee_id" in resp.get_json()["errors"]


def test_a_deleted_agent_cannot_be_assigned(tenant, new_ticket):
    agent = tenant.user("agent")
    assert tenant.api.delete(f"/api/v1/users/{agent['id']}").status_code in (200, 204)
    resp = _patch(tenant.api, new_ticket(), {"assignee_id": agent["id"]})
    assert resp.status_code == 422 and "assignee_id" in resp.get_json()["errors"]


def test_team_can_be_set_and_cleared(tenant, new_ticket):
    team = tenant.api.post("/api/v1/teams", json={"name": "Billing"}).get_json()
    ticket = new_ticket()
    assert _patch(tenant.api, ticket, {"team_id": team["id"]}).get_json()["team_id"] == team["id"]
    body = _patch(tenant.api, ticket, {"team_id": None}).get_json()
    assert (body["team_id"], body["status"]) == (None, "new")


# --- status transitions ------------------------------------------------------------------------

def test_status_moves_through_the_lifecycle(tenant, new_ticket):
    ticket = new_ticket()
    agent = tenant.user("agent")
    assert _patch(tenant.api, ticket, {"status": "open", "assignee_id": agent["id"]}).get_json()["status"] == "open"
    assert _patch(tenant.api, ticket, {"status": "pending"}).get_json()["status"] == "pending"
    resolved = _patch(tenant.api, ticket, {"status": "resolved"}).get_json()
    assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None
    assert resolved["resolution_seconds"] is not None
    back = _patch(tenant.api, ticket, {"status": "open"}).get_json()
    assert back["status"] == "open" and back["resolved_at"] is None


def test_going_back_to_new_after_work_started_is_refused_with_a_reason(tenant, new_ticket):
    ticket = new_ticket()
    _patch(tenant.api, ticket, {"status": "pending"})
    resp = _patch(tenant.api, ticket, {"status": "new"})
    assert resp.status_code == 409
    assert "pending cannot go back to new" in resp.get_json()["message"]


def test_taking_the_assignee_off_an_open_ticket_puts_it_back_in_the_queue(tenant, new_ticket):
    agent = tenant.user("agent")
    ticket = new_ticket()
    assert _patch(tenant.api, ticket, {"assignee_id": agent["id"]}).get_json()["status"] == "open"
    body = _patch(tenant.api, ticket, {"assignee_id": None}).get_json()
    assert (body["assignee_id"], body["status"]) == (None, "new")
    pending = new_ticket()
    _patch(tenant.api, pending, {"assignee_id": agent["id"], "status": "pending"})
    assert _patch(tenant.api, pending, {"assignee_id": None}).get_json()["status"] == "pending"


def test_an_unassigned_open_ticket_may_go_back_to_new(tenant, new_ticket, in_tenant):
    """One left open with nobody on it (before `open` needed an assignee) goes back to the queue."""
    ticket = new_ticket()
    with in_tenant(tenant) as session:
        session.get(Ticket, uuid.UUID(ticket["id"])).status = "open"
        session.commit()
    assert _patch(tenant.api, ticket, {"status": "new"}).get_json()["status"] == "new"


@pytest.mark.parametrize("status", ["new", "pending", "resolved"])
def test_open_without_an_assignee_is_refused_and_changes_nothing(tenant, new_ticket, table_counts, status):
    """A ticket is open when someone is assigned: an open one with nobody on it is in no queue, and
    auto-assignment, which takes only new tickets, would never pick it up."""
    ticket = new_ticket()
    if status != "new":
        assert _patch(tenant.api, ticket, {"status": status}).status_code == 200
    before = tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()
    counts = table_counts(tenant)
    resp = _patch(tenant.api, ticket, {"status": "open", "title": "still waiting"})
    assert resp.status_code == 409, resp.get_json()
    assert "assignee" in resp.get_json()["message"]
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json() == before
    assert table_counts(tenant) == counts


def test_taking_the_assignee_off_while_saying_open_is_refused(tenant, new_ticket):
    agent = tenant.user("agent")
    ticket = new_ticket()
    assert _patch(tenant.api, ticket, {"assignee_id": agent["id"]}).get_json()["status"] == "open"
    resp = _patch(tenant.api, ticket, {"assignee_id": None, "status": "open"})
    assert resp.status_code == 409, resp.get_json()
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()["assignee_id"] == agent["id"]


@pytest.mark.parametrize("status", ["new", "pending", "resolved"])
def test_open_with_an_assignee_in_the_same_patch_is_accepted(tenant, new_ticket, status):
    agent = tenant.user("agent")
    ticket = new_ticket()
    if status != "new":
        assert _patch(tenant.api, ticket, {"status": status}).status_code == 200
    body = _patch(tenant.api, ticket, {"status": "open", "assignee_id": agent["id"]}).get_json()
    assert (body["status"], body["assignee_id"]) == ("open", agent["id"])


def test_new_with_an_assignee_is_refused(tenant, new_ticket):
    agent = tenant.user("agent")
    resp = _patch(tenant.api, new_ticket(), {"status": "new", "assignee_id": agent["id"]})
    assert resp.status_code == 409
    assert "assigned" in resp.get_json()["message"]


def test_a_closed_ticket_cannot_be_changed_until_reopened(tenant, new_ticket, table_counts):
    ticket = new_ticket()
    tenant.api.post(f"/api/v1/tickets/{ticket['id']}/close")
    counts = table_counts(tenant)
    resp = _patch(tenant.api, ticket, {"title": "sneaky"})
    assert resp.status_code == 409
    assert "reopen" in resp.get_json()["message"]
    assert table_counts(tenant) == counts


# --- close and reopen --------------------------------------------------------------------------

def test_close_sets_closed_at_and_resolution_then_409_when_closed(tenant, new_ticket, recorded_events,
                                                                 audit_entries, live_events):
    ticket = new_ticket()
    listen = live_events(tenant, ticket["id"])
    resp = tenant.api.post(f"/api/v1/tickets/{ticket['id']}/close", json={"resolution": "Replaced the toner"})
    assert resp.status_code == 200
    body = resp.get_json()
    assert (body["status"], body["resolution"]) == ("closed", "Replaced the toner")
    assert body["closed_at"] is not None and body["resolved_at"] is not None
    again = tenant.api.post(f"/api/v1/tickets/{ticket['id']}/close")
    assert again.status_code == 409
    assert [t for t, _ in recorded_events(tenant)] == ["ticket.created", "ticket.closed"]
    assert [e.action for e in audit_entries(tenant, ticket["id"])] == ["created", "closed"]
    assert [e["ticket"]["status"] for e in listen()] == ["closed"]


def test_close_without_a_body(tenant, new_ticket):
    ticket = new_ticket()
    resp = tenant.api.client.post(f"/api/v1/tickets/{ticket['id']}/close",
                                  headers={"Authorization": f"Bearer {tenant.key}"})
    assert resp.status_code == 200
    assert resp.get_json()["status"] == "closed"


def test_close_refuses_unknown_fields(tenant, new_ticket):
    ticket = new_ticket()
    resp = tenant.api.post(f"/api/v1/tickets/{ticket['id']}/close", json={"status": "open"})
    assert resp.status_code == 422
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()["status"] == "new"


def test_reopen_returns_to_open_or_the_queue(tenant, new_ticket, recorded_events, audit_entries):
    agent = tenant.user("agent")
    assigned, unassigned = new_ticket("a"), new_ticket("b")
    _patch(tenant.api, assigned, {"assignee_id": agent["id"]})
    for ticket in (assigned, unassigned):
        tenant.api.post(f"/api/v1/tickets/{ticket['id']}/close")
    first = tenant.api.post(f"/api/v1/tickets/{assigned['id']}/reopen")
    second = tenant.api.post(f"/api/v1/tickets/{unassigned['id']}/reopen")
    assert first.status_code == second.status_code == 200
    assert (first.get_json()["status"], first.get_json()["closed_at"]) == ("open", None)
    assert second.get_json()["status"] == "new"
    assert recorded_events(tenant)[-1][0] == "ticket.updated"
    reopened = [e for e in audit_entries(tenant, unassigned["id"]) if e.action == "reopened"]
    assert [(e.before["status"], e.after["status"]) for e in reopened] == [("closed", "new")]


def test_reopen_clears_the_resolution_the_audit_log_keeps_and_takes_no_fields(tenant, new_ticket, audit_entries):
    ticket = new_ticket()
    path = f"/api/v1/tickets/{ticket['id']}"
    assert tenant.api.post(f"{path}/close", json={"resolution": "Refunded."}).get_json()["resolution"] == "Refunded."
    refused = tenant.api.post(f"{path}/reopen", json={"resolution": "keep"})
    assert refused.status_code == 422 and "resolution" in refused.get_json()["errors"]
    assert tenant.api.get(path).get_json()["status"] == "closed"
    reopened = tenant.api.post(f"{path}/reopen", json={})
    assert reopened.status_code == 200 and reopened.get_json()["resolution"] is None
    entry = next(e for e in audit_entries(tenant, ticket["id"]) if e.action == "reopened")
    assert (entry.before["resolution"], entry.after["resolution"]) == ("Refunded.", None)
    told = tenant.api.get("/api/v1/events?types=ticket.updated").get_json()["items"][-1]["data"]
    assert sorted(told["changes"]) == ["resolution", "status"] and told["ticket"]["resolution"] is None


def test_reopen_of_an_open_ticket_answers_409(tenant, new_ticket):
    resp = tenant.api.post(f"/api/v1/tickets/{new_ticket()['id']}/reopen")
    assert resp.status_code == 409
    assert "closed or resolved" in resp.get_json()["message"]


# --- roles -------------------------------------------------------------------------------------

def test_requester_may_edit_wording_but_not_workflow(tenant, new_ticket):
    requester = tenant.user("requester")
    api = tenant.key_for(requester)
    ticket = new_ticket("mine", api=api)
    assert _patch(api, ticket, {"title": "clearer"}).status_code == 200
    for body in ({"status": "resolved"}, {"priority": "urgent"}, {"assignee_id": tenant.admin_id}):
        assert _patch(api, ticket, body).status_code == 403
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()["priority"] == "normal"


def test_requester_can_close_and_reopen_their_ticket(tenant, new_ticket):
    api = tenant.key_for(tenant.user("requester"))
    ticket = new_ticket("mine", api=api)
    assert api.post(f"/api/v1/tickets/{ticket['id']}/close").status_code == 200
    assert api.post(f"/api/v1/tickets/{ticket['id']}/reopen").status_code == 200


def test_fast_serialisation_matches_the_documented_schema(tenant, new_ticket, in_tenant):
    agent = tenant.user("agent")
    team = tenant.api.post("/api/v1/teams", json={"name": "Desk"}).get_json()
    bare = new_ticket("bare")
    full = new_ticket("full", description="d", category="c", tags=["x", "y"], priority="urgent")
    _patch(tenant.api, full, {"assignee_id": agent["id"], "team_id": team["id"], "status": "resolved"})
    tenant.api.post(f"/api/v1/tickets/{full['id']}/close", json={"resolution": "done"})
    with in_tenant(tenant) as session:
        for ticket in session.query(Ticket).filter(Ticket.id.in_([bare["id"], full["id"]])):
            if ticket.title == "full":
                ticket.first_response_at = ticket.created_at + timedelta(minutes=5)
            assert dump_ticket(ticket) == TicketSchema().dump(ticket)
