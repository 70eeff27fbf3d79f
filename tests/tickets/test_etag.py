"""A ticket's version (its ETag) moves with every change to its body, whoever makes it.

Messages move the ticket's `updated_at` (and a staff reply its first response), and deleting a
team clears its tickets' `team_id`: each moves the version, so `If-None-Match` never answers
304 for a body that changed, and `If-Match` with a tag read before answers 412.
"""

from __future__ import annotations

import threading

import pytest

from tests.helpers import new_ticket, post_message, upload_file


def test_head_answers_304_to_a_matching_if_none_match_as_get_does(tenant):
    ticket = new_ticket(tenant.api, "Printer on fire")
    etag = _get(tenant.api, ticket).headers["ETag"]
    for path in (f"/api/v1/tickets/{ticket['id']}", f"/api/v1/tickets/by-number/{ticket['number']}"):
        assert tenant.api.client.head(path, headers={"Authorization": f"Bearer {tenant.key}",
                                                     "If-None-Match": etag}).status_code == 304
        assert tenant.api.client.head(path, headers={"Authorization": f"Bearer {tenant.key}",
                                                     "If-None-Match": '"v0"'}).status_code == 200


def _get(api, ticket, tag=None):
    return api.get(f"/api/v1/tickets/{ticket['id']}", headers={"If-None-Match": tag} if tag else None)


# An internal note moves nothing a requester sees: tests/conversation/test_messages_api.py.
@pytest.mark.parametrize("how", ["staff reply", "requester message", "with an attachment"])
def test_a_public_message_moves_the_ticket_s_version(tenant, how):
    requester = tenant.key_for(tenant.user("requester"))
    ticket = new_ticket(requester, "Printer on fire")
    first = _get(tenant.api, ticket)
    if how == "with an attachment":
        upload = upload_file(tenant.api, ticket["id"], b"hello", "note.txt", "text/plain").get_json()
        posted = post_message(tenant.api, ticket["id"], attachment_ids=[upload["id"]])
    else:
        posted = post_message(requester if how == "requester message" else tenant.api, ticket["id"],
                              internal=how == "internal note")
    assert posted.status_code == 201, posted.get_json()

    now = _get(tenant.api, ticket)
    assert now.get_json()["updated_at"] != first.get_json()["updated_at"]
    assert now.get_json()["version"] == first.get_json()["version"] + 1
    assert now.headers["ETag"] != first.headers["ETag"]
    assert _get(tenant.api, ticket, first.headers["ETag"]).status_code == 200
    assert _get(tenant.api, ticket, now.headers["ETag"]).status_code == 304
    stale = tenant.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"priority": "high"},
                             headers={"If-Match": first.headers["ETag"]})
    assert stale.status_code == 412
    assert tenant.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"priority": "high"},
                            headers={"If-Match": now.headers["ETag"]}).status_code == 200


def test_deleting_a_team_moves_its_tickets_versions(tenant):
    team = tenant.api.post("/api/v1/teams", json={"name": "Billing"}).get_json()
    ticket, other = new_ticket(tenant.api, "Refund"), new_ticket(tenant.api, "Invoice")
    assert tenant.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"team_id": team["id"]}).status_code == 200
    before, untouched = _get(tenant.api, ticket), _get(tenant.api, other)

    assert tenant.api.delete(f"/api/v1/teams/{team['id']}").status_code == 204

    after = _get(tenant.api, ticket)
    assert after.get_json()["team_id"] is None
    assert after.headers["ETag"] != before.headers["ETag"]
    assert after.get_json()["updated_at"] > before.get_json()["updated_at"]
    assert _get(tenant.api, ticket, before.headers["ETag"]).status_code == 200
    assert _get(tenant.api, other, untouched.headers["ETag"]).status_code == 304


def test_a_save_over_a_row_changed_meanwhile_is_a_conflict_not_a_500(tenant, monkeypatch):
    """The safety net under the services' locks: were a ticket read without one, the version guard refuses the save."""
    from app.tickets import services

    ticket = new_ticket(tenant.api, "Printer on fire")
    read = services.ticket_for

    def read_unlocked_then_a_message_lands(actor, ticket_id, lock=False):
        found = read(actor, ticket_id)
        posted = []
        poster = threading.Thread(target=lambda: posted.append(post_message(tenant.api, ticket["id"])))
        poster.start()
        poster.join(10)
        assert posted and posted[0].status_code == 201
        return found

    monkeypatch.setattr(services, "ticket_for", read_unlocked_then_a_message_lands)
    resp = tenant.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"priority": "high"})
    assert resp.status_code == 409, resp.get_json()
    monkeypatch.undo()
    after = _get(tenant.api, ticket).get_json()
    assert (after["priority"], after["version"]) == ("normal", 2)
