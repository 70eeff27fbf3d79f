"""A requester's change racing a close of their ticket: the close is waited for and seen, never slipped past.

A requester may not edit or delete their message, delete a file they sent, or upload a file on
their closed ticket (409). Each of those reads the ticket's status; read without a lock, a close
committing in between let the change land on the closed ticket. Here a close is held open in
another transaction while the request runs: the request must wait for it, then answer 409 and
change nothing.
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from app.extensions import db
from tenants.names import schema_for
from tests.helpers import ApiClient, new_ticket, post_message, upload_file


def _waiting_on_a_lock(engine, done: threading.Event, timeout: float = 10) -> bool:
    """Tell whether some statement waits for a row lock before `done` is set (or the time runs out)."""
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline and not done.is_set():
            if conn.execute(sa.text("select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
                                    "and state = 'active'")).scalar():
                return True
            conn.rollback()
            time.sleep(0.02)
    return False


@pytest.mark.parametrize("change", ["edit", "delete", "delete sent file", "upload"])
def test_a_requesters_change_waits_for_a_close_in_flight_and_is_refused(app, tenant, change):
    requester_user = tenant.user("requester")
    requester = tenant.key_for(requester_user)
    ticket = new_ticket(requester)
    path = f"/api/v1/tickets/{ticket['id']}"
    sent = upload_file(requester, ticket["id"], b"log", "a.txt", "text/plain").get_json()["id"]
    message = post_message(requester, ticket["id"], body="It smokes.", attachment_ids=[sent]).get_json()
    own = ApiClient(app.test_client(), requester.key)  # a client of its own, for the request's thread
    send = {
        "edit": lambda: own.patch(f"{path}/messages/{message['id']}", json={"body": "changed under the close"}),
        "delete": lambda: own.delete(f"{path}/messages/{message['id']}"),
        "delete sent file": lambda: own.delete(f"/api/v1/attachments/{sent}"),
        "upload": lambda: upload_file(own, ticket["id"], b"more", "b.txt", "text/plain"),
    }[change]
    with app.app_context():
        engine = db.engine
    schema = schema_for(tenant.slug)
    closing = engine.connect()
    closing.execute(sa.text(f'update "{schema}".tickets set status = \'closed\', closed_at = now(), '
                            'version = version + 1 where id = :id'), {"id": ticket["id"]})
    answered, done = {}, threading.Event()

    def run() -> None:
        answered["response"] = send()
        done.set()

    request = threading.Thread(target=run)
    request.start()
    try:
        waited = _waiting_on_a_lock(engine, done)
    finally:
        closing.commit()  # the close lands while the request waits for it
        closing.close()
        request.join(30)
    response = answered["response"]
    assert response.status_code == 409, response.get_json()
    assert response.get_json()["message"] == "This ticket is closed; reopen it to write again."
    assert waited, "the request never waited for the close"
    items = tenant.api.get(f"{path}/messages").get_json()["items"]
    assert [(m["body"], [a["id"] for a in m["attachments"]]) for m in items] == [("It smokes.", [sent])]
    with engine.connect() as conn:
        files = conn.execute(sa.text(f'select id::text from "{schema}".attachments where ticket_id = :id'),
                             {"id": ticket["id"]}).scalars().all()
    assert files == [sent]


def test_a_post_naming_a_sent_file_does_not_wait_on_it(app, tenant):
    """A requester deleting a file they sent locks it, then their ticket (to see it open). A post
    holds the ticket from its first statement; had it then locked the files it names, a sent one
    included, the two would deadlock (one answered 503). A post locks only unsent uploads."""
    requester = tenant.key_for(tenant.user("requester"))
    ticket = new_ticket(requester)
    sent = upload_file(requester, ticket["id"], b"log", "a.txt", "text/plain").get_json()["id"]
    assert post_message(requester, ticket["id"], body="here", attachment_ids=[sent]).status_code == 201
    with app.app_context():
        engine = db.engine
    schema = schema_for(tenant.slug)
    deleting = engine.connect()  # where a deletion of the sent file stands: it holds the file
    deleting.execute(sa.text(f'select id from "{schema}".attachments where id = :id for update'), {"id": sent})
    own = ApiClient(app.test_client(), requester.key)
    answered, done = {}, threading.Event()

    def run() -> None:
        answered["response"] = post_message(own, ticket["id"], body="again", attachment_ids=[sent])
        done.set()

    request = threading.Thread(target=run)
    request.start()
    try:
        waited = _waiting_on_a_lock(engine, done, timeout=5)
    finally:
        deleting.rollback()
        deleting.close()
        request.join(30)
    assert not waited, "the post waited on the sent file's lock"
    response = answered["response"]
    assert response.status_code == 422, response.get_json()
    assert "is already on a message" in str(response.get_json()["errors"])
