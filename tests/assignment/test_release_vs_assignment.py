"""An agent who is deactivated or made a requester gets no ticket from an assignment running at the
same moment: the release locks their row first, as assignment does, so an assignment under way
finishes first (and its ticket is released with the others) and one that starts later sees them
gone. Without that lock a ticket assigned in between stayed `open` with someone who could no
longer work it.

The concurrent assignment is the real service, committed in its own transaction at the point
right after the release (the gap is the rest of update_user / delete_user).
"""

from __future__ import annotations

import threading
import uuid

import pytest

from app.assignment import services as assignment
from app.people import services as people
from tests.helpers import Desk


@pytest.mark.parametrize("leaves", ["deactivated", "made a requester"])
def test_a_ticket_auto_assigned_while_an_agent_leaves_does_not_stay_with_them(tenant, in_tenant, monkeypatch, leaves):
    desk = Desk(tenant)
    leaving = tenant.user("agent", name="leaving")
    desk.rule(desk.team("Desk", [leaving]))
    waiting = desk.ticket("arrives as they leave")  # no jobs run: it waits, new and unassigned
    assert desk.get(waiting)["status"] == "new"

    original = people._release_tickets
    assigned, workers = [], []

    def release_then_assignment_runs(user):
        original(user)

        def assign():
            with in_tenant(tenant) as session:
                assigned.append(assignment.assign_new_ticket(uuid.UUID(waiting["id"])))
                session.commit()

        worker = threading.Thread(target=assign)
        workers.append(worker)
        worker.start()
        worker.join(3)  # it finishes here unless the release holds the agent's row (then it waits for the commit)

    monkeypatch.setattr(people, "_release_tickets", release_then_assignment_runs)
    if leaves == "deactivated":
        assert tenant.api.delete(f"/api/v1/users/{leaving['id']}").status_code == 204
    else:
        assert tenant.api.patch(f"/api/v1/users/{leaving['id']}", json={"role": "requester"}).status_code == 200
    monkeypatch.undo()
    for worker in workers:
        worker.join(20)
    assert len(assigned) == 1

    now = desk.get(waiting)
    assert now["assignee_id"] != leaving["id"], (
        f"ticket is {now['status']} and assigned to the agent who was {leaves}")
