"""Removing an admin does not deadlock with writes that point at admins.

The last-admin check locks the active admins' rows, and the leaving person's tickets are then
locked one by one. Ordinary writes take the other order: a ticket first, then a foreign-key check
on an admin's row (a message's `author_id`, an assignee), which takes FOR KEY SHARE. The admins'
rows are therefore locked FOR NO KEY UPDATE, which such checks do not wait for (FOR UPDATE made
an admin replying on the ticket of an admin being deactivated deadlock with the deactivation).

Here the reply is the real `POST /messages` (the attachment path, `services.post_message`), held
between its ticket lock (`next_seq`) and its INSERT by pausing `render`, the one call between them.
"""

from __future__ import annotations

import threading
import time

import psycopg

from app.conversation import services as conversation
from tests.helpers import new_ticket, upload_file


def _waiting_on_a_lock(url: str, deadline: float) -> bool:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute("select count(*) from pg_stat_activity "
                                   "where wait_event_type = 'Lock' and state = 'active'").fetchone()[0]
            if waiting:
                return True
            time.sleep(0.05)
    return False


def test_an_admin_replying_on_the_ticket_of_an_admin_being_deactivated_does_not_deadlock(
        app, services, tenant, monkeypatch):
    leaving = tenant.user("admin", name="leaving admin")
    replying = tenant.user("admin", name="replying admin")
    replying_api = tenant.key_for(replying)
    ticket = new_ticket(tenant.api, "Printer on fire")
    assert tenant.api.patch(f"/api/v1/tickets/{ticket['id']}",
                            json={"assignee_id": leaving["id"]}).get_json()["status"] == "open"
    upload = upload_file(replying_api, ticket["id"], b"hello", "note.txt", "text/plain")
    assert upload.status_code == 202, upload.get_json()

    holding, go = threading.Event(), threading.Event()
    original_render = conversation.render

    def render_held(text):
        if threading.current_thread().name == "reply":
            holding.set()      # the reply holds the ticket's row lock (next_seq) here
            go.wait(10)
        return original_render(text)

    monkeypatch.setattr(conversation, "render", render_held)
    answers: dict[str, int] = {}

    def reply():
        answers["reply"] = app.test_client().post(
            f"/api/v1/tickets/{ticket['id']}/messages",
            json={"body": "I'll take it from here", "attachment_ids": [upload.get_json()["id"]]},
            headers={"Authorization": f"Bearer {replying_api.key}"}).status_code

    def deactivate():
        answers["deactivate"] = app.test_client().delete(
            f"/api/v1/users/{leaving['id']}", headers={"Authorization": f"Bearer {tenant.key}"}).status_code

    replier = threading.Thread(target=reply, name="reply")
    replier.start()
    assert holding.wait(10)
    remover = threading.Thread(target=deactivate, name="deactivate")
    remover.start()
    # the deactivation has locked the admins' rows and now waits for the reply's ticket lock
    assert _waiting_on_a_lock(services.database_url, time.monotonic() + 10)
    go.set()
    replier.join(30)
    remover.join(30)

    assert answers == {"reply": 201, "deactivate": 204}, (
        f"{answers}: one of the two was killed as a deadlock victim (503) or failed")
