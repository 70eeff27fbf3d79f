"""A message frame's `idempotency_key`: a frame sent again (after a reconnect) stores nothing twice."""

from __future__ import annotations

import pytest

from tests import helpers


def stored(tenant, ticket: dict) -> list[dict]:
    return tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]


@pytest.mark.parametrize("with_file", [False, True])
def test_a_frame_sent_again_with_its_key_is_answered_with_the_first_message(tenant, server_a, with_file):
    ticket = helpers.new_ticket(tenant.api)
    frame = {"type": "message", "body": "only once", "idempotency_key": "k-1"}
    if with_file:  # the session's path, which locks and checks each file
        upload = helpers.upload_file(tenant.api, ticket["id"], b"hello", "a.txt", "text/plain").get_json()
        frame["attachment_ids"] = [upload["id"]]
    ws = server_a.connect(ticket["id"], key=tenant.key)
    helpers.send(ws, ref="first", **frame)
    first = helpers.next_event(ws, "message.created")
    assert first["ref"] == "first" and "replayed" not in first
    # The same frame again on a new socket, as a page resends what it never saw echoed.
    again = server_a.connect(ticket["id"], key=tenant.key, after_seq=1)
    helpers.send(again, ref="second", **frame)
    echo = helpers.next_event(again, "message.created")
    assert echo["ref"] == "second" and echo["replayed"] is True
    assert echo["message"] == first["message"]
    assert [m["id"] for m in stored(tenant, ticket)] == [first["message"]["id"]]
    # The socket goes on as before: the next message is seq 2, live to both.
    helpers.send(again, ref="third", type="message", body="next")
    assert helpers.next_event(again, "message.created")["message"]["seq"] == 2
    assert helpers.next_event(ws, "message.created")["message"]["seq"] == 2


def test_one_key_is_one_message_over_rest_and_socket_alike(tenant, server_a):
    ticket = helpers.new_ticket(tenant.api)
    body = {"body": "posted over REST first"}
    posted = tenant.api.post(f"/api/v1/tickets/{ticket['id']}/messages", json=body,
                             headers={"Idempotency-Key": "shared"})
    assert posted.status_code == 201
    ws = server_a.connect(ticket["id"], key=tenant.key, after_seq=1)
    helpers.send(ws, type="message", ref="r", idempotency_key="shared", **body)
    echo = helpers.next_event(ws, "message.created")
    assert echo["replayed"] is True and echo["message"] == posted.get_json()
    helpers.send(ws, type="message", ref="r2", idempotency_key="via socket", body="the other way round")
    sent = helpers.next_event(ws, "message.created")["message"]
    replay = tenant.api.post(f"/api/v1/tickets/{ticket['id']}/messages", json={"body": "the other way round"},
                             headers={"Idempotency-Key": "via socket"})
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == sent
    assert len(stored(tenant, ticket)) == 2


def test_a_key_is_its_senders_alone(tenant, server_a):
    """Two people (or keys) using the same string each post their own message."""
    agent = tenant.key_for(tenant.user("agent"))
    ticket = helpers.new_ticket(tenant.api)
    mine = server_a.connect(ticket["id"], key=tenant.key)
    theirs = server_a.connect(ticket["id"], key=agent.key)
    helpers.send(mine, type="message", ref="a", idempotency_key="same", body="same words")
    first = helpers.next_event(mine, "message.created")
    helpers.send(theirs, type="message", ref="b", idempotency_key="same", body="same words")
    echo = [e for e in (helpers.next_event(theirs, "message.created") for _ in range(2)) if e.get("ref") == "b"]
    assert echo and "replayed" not in echo[0] and echo[0]["message"]["id"] != first["message"]["id"]
    assert len(stored(tenant, ticket)) == 2


@pytest.mark.parametrize("frame, field", [
    ({"body": "another text"}, "Idempotency-Key"),  # the key's first message had other words
    ({"body": "first", "internal": True}, "Idempotency-Key"),
    ({"body": "first", "idempotency_key": ""}, "idempotency_key"),
    ({"body": "first", "idempotency_key": "k" * 256}, "idempotency_key"),
    ({"body": "first", "idempotency_key": 7}, "idempotency_key"),
    ({"body": "first", "idempotency_key": ["k"]}, "idempotency_key"),
    ({"body": "first", "idempotency_key": {"k": 1}}, "idempotency_key"),
])
def test_a_bad_or_reused_key_is_refused_and_stores_nothing(tenant, server_a, frame, field):
    ticket = helpers.new_ticket(tenant.api)
    ws = server_a.connect(ticket["id"], key=tenant.key)
    helpers.send(ws, type="message", ref="one", idempotency_key="taken", body="first")
    helpers.next_event(ws, "message.created")
    helpers.send(ws, type="message", ref="two", **{"idempotency_key": "taken", **frame})
    error = helpers.next_event(ws, "error")
    assert error["ref"] == "two" and error["code"] == 422 and field in error["errors"], error
    assert [m["body"] for m in stored(tenant, ticket)] == ["first"]


def test_a_frame_sent_again_after_its_message_was_edited_or_deleted_gets_it_as_it_is_now(tenant, server_a):
    """The stored first answer brought a deleted message (a password sent by mistake) back to the page."""
    ticket = helpers.new_ticket(tenant.api)
    path = f"/api/v1/tickets/{ticket['id']}/messages"
    ws = server_a.connect(ticket["id"], key=tenant.key)
    helpers.send(ws, type="message", ref="a", idempotency_key="edited", body="teh typo")
    edited = helpers.next_event(ws, "message.created")["message"]
    helpers.send(ws, type="message", ref="b", idempotency_key="deleted", body="my password is hunter2")
    deleted = helpers.next_event(ws, "message.created")["message"]
    assert tenant.api.patch(f"{path}/{edited['id']}", json={"body": "the typo"}).status_code == 200
    assert tenant.api.delete(f"{path}/{deleted['id']}").status_code == 204
    again = server_a.connect(ticket["id"], key=tenant.key, after_seq=2)
    helpers.send(again, type="message", ref="a2", idempotency_key="edited", body="teh typo")
    echo = helpers.next_event(again, "message.created")
    assert (echo["ref"], echo["replayed"], echo["message"]["body"]) == ("a2", True, "the typo")
    helpers.send(again, type="message", ref="b2", idempotency_key="deleted", body="my password is hunter2")
    gone = helpers.next_event(again, "message.deleted")
    assert (gone["ref"], gone["replayed"], gone["message"]["id"]) == ("b2", True, deleted["id"])
    assert "hunter2" not in str(gone)
