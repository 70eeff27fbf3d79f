"""Releasing a leaving agent's tickets locks them as it reads them: a ticket another agent took over,
or that was resolved, just before is not theirs any more and is left as it is (it used to lose its
new assignee).

The race is made deterministic by letting the takeover (a real PATCH) commit just before the
release's own `update_ticket` call, which is where it can land in production.
"""

from __future__ import annotations

import threading

import pytest

from app.tickets import services as tickets
from tests.helpers import new_ticket


@pytest.mark.parametrize("meanwhile", ["taken over by another agent", "resolved"])
def test_a_ticket_changed_before_the_release_locks_it_is_not_overwritten(app, tenant, monkeypatch, meanwhile):
    leaving, taking = tenant.user("agent", name="leaving"), tenant.user("agent", name="taking over")
    ticket = new_ticket(tenant.api, "Printer on fire")
    assert tenant.api.patch(f"/api/v1/tickets/{ticket['id']}",
                            json={"assignee_id": leaving["id"]}).get_json()["status"] == "open"
    change = {"assignee_id": taking["id"]} if meanwhile != "resolved" else {"status": "resolved"}

    original = tickets.update_ticket
    fired, others, landed_first, done = [], [], [], []

    def lands_first(actor, ticket_id, changes, *args, **kwargs):
        if not fired and threading.current_thread() is threading.main_thread():
            fired.append(True)
            other = threading.Thread(target=lambda: done.append(app.test_client().patch(
                f"/api/v1/tickets/{ticket['id']}", json=change,
                headers={"Authorization": f"Bearer {tenant.key}"}).status_code))
            others.append(other)
            other.start()
            other.join(3)  # it commits here unless the release already holds the ticket (then it waits)
            landed_first.append(bool(done))
        return original(actor, ticket_id, changes, *args, **kwargs)

    monkeypatch.setattr(tickets, "update_ticket", lands_first)
    assert tenant.api.delete(f"/api/v1/users/{leaving['id']}").status_code == 204
    assert fired
    monkeypatch.undo()
    for other in others:
        other.join(20)
    if not landed_first[0]:
        return  # the release locked the ticket first: the change applied after it, nothing to lose
    assert done == [200], done

    now = tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()
    if meanwhile == "resolved":
        assert (now["status"], now["assignee_id"]) == ("resolved", leaving["id"]), (
            "a ticket solved meanwhile lost the record of who solved it")
    else:
        assert (now["status"], now["assignee_id"]) == ("open", taking["id"]), (
            f"the takeover was undone: {now['status']}, assignee {now['assignee_id']}")
