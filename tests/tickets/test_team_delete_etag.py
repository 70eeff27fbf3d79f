"""Deleting a team moves the version (ETag) of every ticket it clears, including one being moved into
the team at that moment: the team's row is locked first, so such a move waits and then finds the
team gone (409) instead of landing between the tickets' UPDATE and the team's DELETE, where the
foreign key's ON DELETE SET NULL would clear it without a new version.

The in-between write is a real PATCH, started at the one point in `delete_team` between its
UPDATE and its DELETE (the audit record).
"""

from __future__ import annotations

import threading

import app.audit as audit_module
from tests.helpers import new_ticket


def test_a_ticket_moved_into_a_team_while_it_is_deleted_gets_a_new_etag(app, tenant, monkeypatch):
    team = tenant.api.post("/api/v1/teams", json={"name": "Billing"}).get_json()
    ticket = new_ticket(tenant.api, "Refund")
    original = audit_module.record
    moved, others = [], []

    def record(entity, entity_id, action, *args, **kwargs):
        if (entity, str(entity_id), action) == ("team", team["id"], "deleted") and not moved:
            other = threading.Thread(target=lambda: moved.append(app.test_client().patch(
                f"/api/v1/tickets/{ticket['id']}", json={"team_id": team["id"]},
                headers={"Authorization": f"Bearer {tenant.key}"})))
            others.append(other)
            other.start()
            other.join(3)  # it commits here unless the deletion already holds the team (then it waits)
        return original(entity, entity_id, action, *args, **kwargs)

    monkeypatch.setattr(audit_module, "record", record)
    assert tenant.api.delete(f"/api/v1/teams/{team['id']}").status_code == 204
    monkeypatch.undo()
    for other in others:
        other.join(20)
    seen = moved[0]
    if seen.status_code != 200:
        assert seen.status_code in (409, 422), seen.get_json()  # it waited for the deletion, and was refused
        return
    # `seen` is what a client read after the move: team set, and its ETag
    assert seen.get_json()["team_id"] == team["id"]
    now = tenant.api.get(f"/api/v1/tickets/{ticket['id']}")
    assert now.get_json()["team_id"] is None
    assert now.headers["ETag"] != seen.headers["ETag"], "the team was cleared and the ETag did not move"
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}",
                          headers={"If-None-Match": seen.headers["ETag"]}).status_code == 200
