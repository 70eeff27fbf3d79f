"""The ticket stream against real gunicorn processes: catch-up, live fan-out, isolation, bad frames."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
import sqlalchemy as sa
import websocket

from app import realtime, unit_of_work
from app.conversation import stream
from app.extensions import db
from app.realtime import LIVE_EVENTS, channel
from tenants.context import current_tenant
from tenants.resolution import active_tenant
from tests import helpers


def test_two_sockets_on_a_ticket_see_each_others_messages(tenant, server_a):
    agent = tenant.user("agent")
    agent_key = tenant.key_for(agent).key
    ticket = helpers.new_ticket(tenant.api)
    admin_ws = server_a.connect(ticket["id"], key=tenant.key)
    agent_ws = server_a.connect(ticket["id"], key=agent_key)
    helpers.send(admin_ws, type="message", body="from admin")
    helpers.send(agent_ws, type="message", body="from agent")
    for ws in (admin_ws, agent_ws):
        got = helpers.message_events(ws, 2)
        assert [m["seq"] for m in got] == [1, 2]
        assert {m["body"] for m in got} == {"from admin", "from agent"}
        assert {m["author_id"] for m in got} == {tenant.admin_id, agent["id"]}
    stored = tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]
    assert [m["seq"] for m in stored] == [1, 2]


def test_a_rest_post_reaches_sockets_on_both_processes(tenant, server_a, server_b):
    ticket = helpers.new_ticket(tenant.api)
    on_a = server_a.connect(ticket["id"], key=tenant.key)
    on_b = server_b.connect(ticket["id"], key=tenant.key)
    created = helpers.post_message(tenant.api, ticket["id"], body="over REST").get_json()
    assert helpers.next_event(on_a, "message.created")["message"] == created
    assert helpers.next_event(on_b, "message.created")["message"] == created


def test_a_socket_message_crosses_to_the_other_process(tenant, server_a, server_b):
    ticket = helpers.new_ticket(tenant.api)
    on_a = server_a.connect(ticket["id"], key=tenant.key)
    on_b = server_b.connect(ticket["id"], key=tenant.key)
    helpers.send(on_a, type="message", body="A to B")
    helpers.send(on_b, type="message", body="B to A")
    for ws in (on_a, on_b):
        assert {m["body"] for m in helpers.message_events(ws, 2)} == {"A to B", "B to A"}


def test_connect_sends_everything_after_after_seq_then_live(tenant, server_a):
    ticket = helpers.new_ticket(tenant.api)
    for i in range(1, 6):
        helpers.post_message(tenant.api, ticket["id"], body=f"m{i}")
    ws = server_a.connect(ticket["id"], key=tenant.key, after_seq=2)
    assert [m["body"] for m in helpers.message_events(ws, 3)] == ["m3", "m4", "m5"]
    helpers.post_message(tenant.api, ticket["id"], body="m6")
    assert helpers.next_event(ws, "message.created")["message"]["seq"] == 6
    ws.close()
    # Missed while away: picked up on reconnect from the last seq seen, nothing twice.
    helpers.post_message(tenant.api, ticket["id"], body="m7")
    helpers.post_message(tenant.api, ticket["id"], body="m8")
    again = server_a.connect(ticket["id"], key=tenant.key, after_seq=6)
    assert [m["body"] for m in helpers.message_events(again, 2)] == ["m7", "m8"]
    helpers.post_message(tenant.api, ticket["id"], body="m9")
    assert helpers.next_event(again, "message.created")["message"]["body"] == "m9"


def test_requester_sockets_never_get_internal_notes(tenant, server_a, server_b):
    requester_user = tenant.user("requester")
    requester = tenant.key_for(requester_user)
    agent_key = tenant.key_for(tenant.user("agent")).key
    ticket = helpers.new_ticket(requester)
    helpers.post_message(tenant.api, ticket["id"], body="old note", internal=True)
    req_a = server_a.connect(ticket["id"], key=requester.key)
    req_b = server_b.connect(ticket["id"], key=requester.key)
    agent_ws = server_a.connect(ticket["id"], key=agent_key)
    assert helpers.next_event(agent_ws, "message.created")["message"]["body"] == "old note"
    helpers.post_message(tenant.api, ticket["id"], body="REST note", internal=True)
    helpers.send(agent_ws, type="message", body="socket note", internal=True)
    helpers.send(agent_ws, type="message", body="public answer")
    for ws in (req_a, req_b):
        # Events arrive in seq order, so the public answer (seq 4) comes after any note would have.
        first = helpers.next_event(ws)
        assert first["type"] == "message.created" and first["message"]["body"] == "public answer"
        assert first["message"]["seq"] == 4
    assert [m["body"] for m in helpers.message_events(agent_ws, 3)] == ["REST note", "socket note", "public answer"]
    helpers.send(req_a, type="message", body="sneaky", internal=True)
    error = helpers.next_event(req_a, "error")
    assert error["code"] == 403
    late = server_b.connect(ticket["id"], key=requester.key)
    assert helpers.next_event(late)["message"]["body"] == "public answer"


def test_strangers_are_refused_before_the_handshake(tenant, other_tenant, server_a):
    ticket = helpers.new_ticket(tenant.api)
    helpers.post_message(tenant.api, ticket["id"], body="private")
    alice = tenant.key_for(tenant.user("requester"))
    assert helpers.refused_status(server_a, ticket["id"]) == 401
    assert helpers.refused_status(server_a, ticket["id"], key="tms_000000000000_not-a-real-key") == 401
    assert helpers.refused_status(server_a, ticket["id"], key=other_tenant.key) == 404
    assert helpers.refused_status(server_a, ticket["id"], key=alice.key) == 404
    assert helpers.refused_status(server_a, ticket["id"], token="made-up") == 401
    assert helpers.refused_status(server_a, ticket["id"], key=tenant.key, after_seq=-3) == 422
    other_ticket = helpers.new_ticket(other_tenant.api)
    assert helpers.refused_status(server_a, other_ticket["id"], key=tenant.key) == 404


def test_stream_tokens_open_one_socket_on_their_own_ticket(tenant, server_a):
    ticket, other = helpers.new_ticket(tenant.api), helpers.new_ticket(tenant.api)
    helpers.post_message(tenant.api, ticket["id"], body="hi browser")
    token = tenant.api.post(f"/api/v1/tickets/{ticket['id']}/stream-token").get_json()["token"]
    assert helpers.refused_status(server_a, other["id"], token=token) == 401  # spent on the wrong ticket
    token = tenant.api.post(f"/api/v1/tickets/{ticket['id']}/stream-token").get_json()["token"]
    ws = server_a.connect(ticket["id"], token=token)
    assert helpers.next_event(ws, "message.created")["message"]["body"] == "hi browser"
    helpers.send(ws, type="message", body="from the browser")
    assert helpers.next_event(ws, "message.created")["message"]["author_id"] == tenant.admin_id
    assert helpers.refused_status(server_a, ticket["id"], token=token) == 401  # single use


def test_bad_frames_get_an_error_event_and_change_nothing(tenant, server_a):
    ticket = helpers.new_ticket(tenant.api)
    other = helpers.new_ticket(tenant.api)
    foreign_parent = helpers.post_message(tenant.api, other["id"]).get_json()
    ws = server_a.connect(ticket["id"], key=tenant.key)
    bad = [
        ("{not json", 400),
        ("[1, 2]", 400),
        (json.dumps({"type": "dance"}), 422),
        (json.dumps({"body": "no type"}), 422),
        (json.dumps({"type": "message"}), 422),
        (json.dumps({"type": "message", "body": "x" * (64 * 1024 + 1)}), 422),
        (json.dumps({"type": "message", "body": "  "}), 422),
        (json.dumps({"type": "message", "body": "\u200b"}), 422),
        (json.dumps({"type": "message", "body": "ok", "parent_id": "nope"}), 422),
        (json.dumps({"type": "message", "body": "ok", "parent_id": foreign_parent["id"]}), 422),
        (json.dumps({"type": "message", "body": "ok", "extra": 1}), 422),
        (json.dumps({"type": "typing", "body": "x"}), 422),
    ]
    for i, (frame, code) in enumerate(bad):
        payload = frame
        if frame.startswith("{\"type\""):
            payload = json.dumps({**json.loads(frame), "ref": i})
        ws.send(payload)
        error = helpers.next_event(ws)
        assert error["type"] == "error" and error["code"] == code, (frame[:60], error)
        assert error["message"]
    ws.send_binary(b"\x00\x01")
    assert helpers.next_event(ws)["code"] == 400
    helpers.send(ws, type="message", body="fine", ref="r1")
    assert helpers.next_event(ws)["message"]["seq"] == 1  # the socket still works and nothing else was stored
    assert len(tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]) == 1


def test_typing_is_relayed_to_others_not_stored(app, services, tenant, server_a, server_b):
    agent = tenant.user("agent")
    ticket = helpers.new_ticket(tenant.api)
    typist = server_a.connect(ticket["id"], key=tenant.key_for(agent).key)
    watcher = server_b.connect(ticket["id"], key=tenant.key)
    # Typing is not stored, so there is no catch-up for it: wait until both processes listen.
    with app.app_context():
        name = channel(active_tenant(tenant.slug).ref().id, ticket["id"])
    assert wait_for_numsub(redis.Redis.from_url(services.redis_url), name, 2) == 2
    helpers.send(typist, type="typing")
    assert helpers.next_event(watcher) == {"type": "typing", "user_id": agent["id"]}
    helpers.send(typist, type="message", body="done typing")
    # The typist's own next event is its message, not an echo of its typing.
    assert helpers.next_event(typist)["type"] == "message.created"
    assert helpers.next_event(watcher)["type"] == "message.created"
    assert len(tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]) == 1


def wait_for_numsub(client: redis.Redis, name: str, expected: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        count = dict(client.pubsub_numsub(name))[name.encode()]
        if count == expected or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


def test_a_process_subscribes_while_it_holds_sockets_and_drops_it_after_the_last(
        app, services, tenant, server_a, server_b):
    ticket = helpers.new_ticket(tenant.api)
    with app.app_context():
        tenant_id = active_tenant(tenant.slug).ref().id
    name = channel(tenant_id, ticket["id"])
    client = redis.Redis.from_url(services.redis_url)
    assert wait_for_numsub(client, name, 0) == 0
    first, second = server_a.connect(ticket["id"], key=tenant.key), server_a.connect(ticket["id"], key=tenant.key)
    assert wait_for_numsub(client, name, 1) == 1  # one subscription per process, however many sockets
    on_b = server_b.connect(ticket["id"], key=tenant.key)
    assert wait_for_numsub(client, name, 2) == 2
    first.close()
    helpers.post_message(tenant.api, ticket["id"], body="still here")
    assert helpers.next_event(second, "message.created")["message"]["body"] == "still here"
    assert wait_for_numsub(client, name, 2) == 2
    second.close()
    assert wait_for_numsub(client, name, 1) == 1
    on_b.close()
    assert wait_for_numsub(client, name, 0) == 0


def test_messages_published_during_a_pubsub_outage_still_arrive(services, tenant, server_a):
    ticket = helpers.new_ticket(tenant.api)
    ws = server_a.connect(ticket["id"], key=tenant.key)
    helpers.post_message(tenant.api, ticket["id"], body="before")
    assert helpers.next_event(ws, "message.created")["message"]["body"] == "before"
    client = redis.Redis.from_url(services.redis_url)
    assert client.client_kill_filter(_type="pubsub") >= 1
    helpers.post_message(tenant.api, ticket["id"], body="during")
    helpers.post_message(tenant.api, ticket["id"], body="after")
    assert [m["body"] for m in helpers.message_events(ws, 2)] == ["during", "after"]


def test_a_peer_that_stops_answering_pings_is_dropped(app, services, tenant, impatient_server):
    ticket = helpers.new_ticket(tenant.api)
    with app.app_context():
        name = channel(active_tenant(tenant.slug).ref().id, ticket["id"])
    client = redis.Redis.from_url(services.redis_url)
    # websocket-client answers pings only while reading; this peer never reads, so it looks dead.
    silent = impatient_server.connect(ticket["id"], key=tenant.key)
    assert wait_for_numsub(client, name, 1) == 1
    # The client never closes `silent`: only the server's heartbeat can end the subscription.
    assert wait_for_numsub(client, name, 0, timeout=10) == 0
    silent.close()


def test_revoking_the_key_ends_an_open_stream(tenant, server_a):
    """At once: server_a re-checks access only every 30 s; the revocation is announced to its hub."""
    ticket = helpers.new_ticket(tenant.api)
    agent = tenant.user("agent")
    created = tenant.api.post("/api/v1/api-keys", json={"name": "soon revoked", "role": "agent",
                                                        "user_id": agent["id"]}).get_json()
    ws = server_a.connect(ticket["id"], key=created["key"])
    helpers.post_message(tenant.api, ticket["id"], body="while allowed")
    assert helpers.next_event(ws, "message.created")["message"]["body"] == "while allowed"
    assert tenant.api.delete(f"/api/v1/api-keys/{created['id']}").status_code == 204
    assert helpers.close_code(ws) == 1008


def test_suspending_the_tenant_ends_an_open_stream(app, make_tenant, impatient_server):
    from tenants.provisioning import set_status

    doomed = make_tenant()
    ticket = helpers.new_ticket(doomed.api)
    ws = impatient_server.connect(ticket["id"], key=doomed.key)
    helpers.post_message(doomed.api, ticket["id"], body="before")
    assert helpers.next_event(ws, "message.created")["message"]["body"] == "before"
    with app.app_context():
        set_status(doomed.slug, "suspended")
        db.session.commit()
    assert helpers.close_code(ws) == 1008


def test_typing_is_rate_limited_per_socket(tenant, impatient_server):
    ticket = helpers.new_ticket(tenant.api)
    typist = impatient_server.connect(ticket["id"], key=tenant.key)
    watcher = impatient_server.connect(ticket["id"], key=tenant.key)
    helpers.post_message(tenant.api, ticket["id"], body="ready")  # seen by both once they listen
    for ws in (typist, watcher):
        assert helpers.next_event(ws, "message.created")["message"]["body"] == "ready"
    for _ in range(5):
        helpers.send(typist, type="typing")
    helpers.send(typist, type="message", body="sent")
    # The message may come first: the periodic catch-up (every 0.5 s here) can read it from the
    # database before the typing event, published earlier, is handed to the socket.
    assert sorted(helpers.next_event(watcher)["type"] for _ in range(2)) == ["message.created", "typing"]
    # This server relays one typing event per socket per 600 s: the rest were dropped.
    helpers.send(typist, type="message", body="after")
    assert helpers.next_event(watcher)["message"]["body"] == "after"


def test_every_socket_gets_each_seq_once_in_order_under_concurrent_senders(tenant, server_a, server_b):
    ticket = helpers.new_ticket(tenant.api)
    sockets = [server.connect(ticket["id"], key=tenant.key) for server in (server_a, server_b, server_a, server_b)]
    for i in range(15):
        for n, ws in enumerate(sockets[:2]):
            helpers.send(ws, type="message", body=f"{n}-{i}")
    for ws in sockets:
        assert [m["seq"] for m in helpers.message_events(ws, 30)] == list(range(1, 31))


def test_a_message_whose_event_was_never_published_arrives_by_periodic_catch_up(
        app, tenant, impatient_server):
    from app.auth.actor import Actor
    from app.conversation import services
    from tenants.context import tenant_context

    ticket = helpers.new_ticket(tenant.api)
    ws = impatient_server.connect(ticket["id"], key=tenant.key)
    helpers.post_message(tenant.api, ticket["id"], body="published")
    assert helpers.next_event(ws, "message.created")["message"]["body"] == "published"
    with app.app_context(), tenant_context(active_tenant(tenant.slug).ref()):
        services.post_message(Actor(user_id=uuid.UUID(tenant.admin_id), role="admin"),
                              uuid.UUID(ticket["id"]), body="lost in Redis")
        db.session.info[unit_of_work.PENDING].pop(LIVE_EVENTS)  # stored, but its live event is never sent
        db.session.commit()
    assert helpers.next_event(ws, "message.created")["message"]["body"] == "lost in Redis"


def test_edits_deletions_and_scans_whose_events_were_never_published_arrive_by_periodic_resync_once(
        app, tenant, in_tenant, impatient_server):
    """A process that dies between its commit and its publish leaves an open page stale until the
    next resync (every half second here), not until a reload; what was told live is not sent again."""
    from app.auth.actor import Actor
    from app.conversation import services
    from app.media.models import Attachment
    from tenants.context import tenant_context

    ticket = helpers.new_ticket(tenant.api)
    kept, gone, told = (helpers.post_message(tenant.api, ticket["id"], body=b).get_json() for b in ("a", "b", "c"))
    upload = helpers.upload_file(tenant.api, ticket["id"], b"hello", "a.txt", "text/plain").get_json()
    ws = impatient_server.connect(ticket["id"], key=tenant.key, after_seq=3)
    helpers.post_message(tenant.api, ticket["id"], body="d")  # once it arrives, the socket has said its hello
    assert helpers.next_event(ws, "message.created")["message"]["body"] == "d"
    assert tenant.api.patch(f"/api/v1/tickets/{ticket['id']}/messages/{told['id']}",
                            json={"body": "told live"}).status_code == 200
    assert helpers.next_event(ws, "message.updated")["message"]["body"] == "told live"
    admin = Actor(user_id=uuid.UUID(tenant.admin_id), role="admin")
    with app.app_context(), tenant_context(active_tenant(tenant.slug).ref()):
        services.edit_message(admin, uuid.UUID(ticket["id"]), uuid.UUID(kept["id"]), "edited, never published")
        services.delete_message(admin, uuid.UUID(ticket["id"]), uuid.UUID(gone["id"]))
        late = db.session.info[unit_of_work.PENDING].pop(LIVE_EVENTS)  # stored, but not published (yet)
        db.session.commit()
    with in_tenant(tenant) as session:  # a scan's verdict committed by a worker that died before publishing
        session.execute(sa.update(Attachment).where(Attachment.id == uuid.UUID(upload["id"]))
                        .values(status="clean", scanned_at=sa.func.now()))
        session.commit()
    seen = [(event["type"], event.get("message", event.get("attachment"))["id"])
            for event in _drain(ws, seconds=3)]  # about six resyncs
    assert sorted(seen) == sorted([("message.updated", kept["id"]), ("message.deleted", gone["id"]),
                                   ("attachment.updated", upload["id"])])
    # Their live events come after all (a publish slower than the resync): told already, not again.
    with app.app_context():
        realtime._publish(late)
    assert _drain(ws, seconds=1.5) == []


def test_what_a_catch_up_sent_as_it_is_now_is_not_told_again_at_a_resync(tenant, impatient_server):
    ticket = helpers.new_ticket(tenant.api)
    edited, gone = (helpers.post_message(tenant.api, ticket["id"], body=b).get_json() for b in ("a", "b"))
    path = f"/api/v1/tickets/{ticket['id']}/messages"
    assert tenant.api.patch(f"{path}/{edited['id']}", json={"body": "a, edited"}).status_code == 200
    assert tenant.api.delete(f"{path}/{gone['id']}").status_code == 204
    ws = impatient_server.connect(ticket["id"], key=tenant.key)  # after_seq 0: all by catch-up
    assert helpers.next_event(ws, "message.created")["message"]["body"] == "a, edited"
    assert _drain(ws, seconds=2) == []  # about four resyncs


def _drain(ws, seconds: float) -> list[dict]:
    """Return the events (but the ticket's) a socket gets within `seconds`."""
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            event = helpers.next_event(ws, timeout=max(deadline - time.monotonic(), 0.01))
        except (TimeoutError, websocket.WebSocketTimeoutException):
            break
        if event["type"] != "ticket.updated":
            seen.append(event)
    return seen


def test_a_public_reply_frame_under_an_internal_note_is_refused_and_never_reaches_the_requester(tenant, server_a):
    requester = tenant.key_for(tenant.user("requester"))
    ticket = helpers.new_ticket(requester)
    note = helpers.post_message(tenant.api, ticket["id"], body="secret note", internal=True).get_json()
    agent_ws = server_a.connect(ticket["id"], key=tenant.key_for(tenant.user("agent")).key)
    requester_ws = server_a.connect(ticket["id"], key=requester.key)
    assert helpers.next_event(agent_ws, "message.created")["message"]["id"] == note["id"]
    helpers.send(agent_ws, type="message", body="public answer", parent_id=note["id"], ref="r1")
    error = helpers.next_event(agent_ws, "error")
    assert (error["code"], error["ref"]) == (422, "r1") and "parent_id" in error["errors"]
    helpers.send(agent_ws, type="message", body="noted", parent_id=note["id"], internal=True)
    helpers.send(agent_ws, type="message", body="public answer")
    assert [m["body"] for m in helpers.message_events(agent_ws, 2)] == ["noted", "public answer"]
    seen = helpers.next_event(requester_ws, "message.created")["message"]
    assert (seen["body"], seen["parent_id"]) == ("public answer", None)


@pytest.mark.parametrize("field", ["body", "parent_id", "idempotency_key"])
def test_a_frame_refused_for_the_text_it_holds_still_names_its_ref(tenant, server_a, field):
    """A client marks its optimistic message failed by the ref: a NUL in the body is the frame's fault, not
    its ref's. A ref that holds such text is refused without being echoed."""
    ticket = helpers.new_ticket(tenant.api)
    ws = server_a.connect(ticket["id"], key=tenant.api.key)
    helpers.send(ws, type="message", **{"body": "hello", field: "bad\x00text"}, ref="r7")
    error = helpers.next_event(ws, "error")
    assert (error["code"], error["ref"]) == (422, "r7") and field in error["errors"], error
    helpers.send(ws, type="message", body="hello", ref="bad\x00ref")
    error = helpers.next_event(ws, "error")
    assert error["code"] == 422 and "ref" not in error and "ref" in error["errors"], error
    helpers.send(ws, type="message", body="fine", ref="r8")
    assert helpers.next_event(ws, "message.created")["ref"] == "r8"
    assert [m["body"] for m in tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]] == [
        "fine"]


def test_a_requesters_frame_on_their_closed_ticket_is_refused_until_they_reopen_it(tenant, server_a):
    requester = tenant.key_for(tenant.user("requester"))
    ticket = helpers.new_ticket(requester)
    ws = server_a.connect(ticket["id"], key=requester.key)
    assert requester.post(f"/api/v1/tickets/{ticket['id']}/close", json={}).status_code == 200
    helpers.send(ws, type="message", body="Thanks!", ref="late", idempotency_key="late-1")
    error = helpers.next_event(ws, "error")
    assert (error["code"], error["ref"]) == (409, "late"), error
    assert error["message"] == "This ticket is closed; reopen it to write again."
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"] == []
    assert requester.post(f"/api/v1/tickets/{ticket['id']}/reopen").status_code == 200
    helpers.send(ws, type="message", body="Thanks!", ref="again", idempotency_key="late-1")
    assert helpers.next_event(ws, "message.created")["message"]["body"] == "Thanks!"


def test_after_a_pubsub_outage_a_socket_sends_the_ticket_again(app, services, tenant, in_tenant, server_a):
    """A ticket change published while the process's pub/sub was down is lost; catch-up by seq brings back
    messages only, so after resubscribing every socket sends the ticket as it is now."""
    ticket = helpers.new_ticket(tenant.api)
    ws = server_a.connect(ticket["id"], key=tenant.key)
    edited = helpers.post_message(tenant.api, ticket["id"], body="before").get_json()
    gone = helpers.post_message(tenant.api, ticket["id"], body="doomed").get_json()
    assert [m["body"] for m in helpers.message_events(ws, 2)] == ["before", "doomed"]
    with in_tenant(tenant) as session:  # changed with no live event: as if it was published into the outage
        schema = current_tenant().schema
        session.execute(sa.text(f'UPDATE "{schema}".tickets SET priority = \'urgent\' WHERE id = :id'),
                        {"id": ticket["id"]})
        session.execute(sa.text(f'UPDATE "{schema}".messages SET body = \'after\', body_html = \'<p>after</p>\','
                                " edited_at = now() WHERE id = :id"), {"id": edited["id"]})
        session.execute(sa.text(f'UPDATE "{schema}".messages SET body = \'\', body_html = \'\', deleted_at = now()'
                                " WHERE id = :id"), {"id": gone["id"]})
        session.commit()
    assert redis.Redis.from_url(services.redis_url).client_kill_filter(_type="pubsub") >= 1
    assert helpers.next_event(ws, "ticket.updated", timeout=10)["ticket"]["priority"] == "urgent"
    changes = [helpers.next_event(ws) for _ in range(2)]  # changed in one transaction: in seq order
    assert [(e["type"], e["message"]["seq"]) for e in changes] == [("message.updated", 1), ("message.deleted", 2)]
    assert changes[0]["message"]["body"] == "after"
    assert changes[1]["message"] == {"id": gone["id"], "seq": 2, "internal": False}


def test_a_socket_back_after_a_drop_hears_of_edits_and_deletions_it_missed(app, tenant, in_tenant, server_a):
    """A catch-up by seq brings new messages only; what changed of those the client held comes after it."""
    requester = tenant.key_for(tenant.user("requester"))
    ticket = helpers.new_ticket(requester)
    path = f"/api/v1/tickets/{ticket['id']}/messages"
    _kept, edited, gone = (helpers.post_message(tenant.api, ticket["id"], body=b).get_json()
                          for b in ("kept", "typo", "wrong ticket"))
    note = helpers.post_message(tenant.api, ticket["id"], body="note", internal=True).get_json()
    old = helpers.post_message(tenant.api, ticket["id"], body="old edit").get_json()
    assert tenant.api.patch(f"{path}/{old['id']}", json={"body": "long ago"}).status_code == 200
    with in_tenant(tenant) as session:  # edited before the socket's window of recent changes
        session.execute(sa.text(f'UPDATE "{current_tenant().schema}".messages SET edited_at = now() - '
                                "interval '20 minutes' WHERE id = :id"), {"id": old["id"]})
        session.commit()
    # While both clients are away: an edit, two deletions (one of a note), a new message.
    assert tenant.api.patch(f"{path}/{edited['id']}", json={"body": "fixed"}).status_code == 200
    for message in (gone, note):
        assert tenant.api.delete(f"{path}/{message['id']}").status_code == 204
    helpers.post_message(tenant.api, ticket["id"], body="new")

    def events(ws, count):
        return [(e["type"], e["message"].get("body", e["message"]["id"])) for e in
                (helpers.next_event(ws) for _ in range(count))]

    agent_ws = server_a.connect(ticket["id"], key=tenant.key, after_seq=5)
    assert events(agent_ws, 4) == [("message.created", "new"), ("message.updated", "fixed"),
                                   ("message.deleted", gone["id"]), ("message.deleted", note["id"])]
    requester_ws = server_a.connect(ticket["id"], key=requester.key, after_seq=5)
    assert events(requester_ws, 3) == [("message.created", "new"), ("message.updated", "fixed"),
                                       ("message.deleted", gone["id"])]
    # A socket that holds nothing is told of no change: its catch-up has every message as it is.
    fresh = server_a.connect(ticket["id"], key=requester.key)
    assert [m["body"] for m in helpers.message_events(fresh, 4)] == ["kept", "fixed", "long ago", "new"]
    helpers.post_message(tenant.api, ticket["id"], body="live")
    assert helpers.next_event(fresh)["message"]["body"] == "live"


def test_a_socket_back_after_a_long_absence_hears_of_changes_since_its_last_socket(tenant, in_tenant, server_a):
    """`changed_since` reaches back past the last 15 minutes, up to 7 days: a page back from a long
    sleep must not keep showing a message deleted meanwhile. Without it, 15 minutes as before."""
    ticket = helpers.new_ticket(tenant.api)
    typo, wrong, ancient = (helpers.post_message(tenant.api, ticket["id"], body=b).get_json()
                            for b in ("typo", "wrong ticket", "ancient"))
    path = f"/api/v1/tickets/{ticket['id']}/messages"
    assert tenant.api.patch(f"{path}/{typo['id']}", json={"body": "fixed"}).status_code == 200
    assert tenant.api.delete(f"{path}/{wrong['id']}").status_code == 204
    assert tenant.api.patch(f"{path}/{ancient['id']}", json={"body": "older than a week"}).status_code == 200
    with in_tenant(tenant) as session:  # as if changed long ago, while the client was away
        schema = current_tenant().schema
        for message, column, ago in ((typo, "edited_at", "20 minutes"), (wrong, "deleted_at", "40 minutes"),
                                     (ancient, "edited_at", "8 days")):
            session.execute(sa.text(f'UPDATE "{schema}".messages SET {column} = now() - interval \'{ago}\' '
                                    "WHERE id = :id"), {"id": message["id"]})
        session.commit()

    markers = []

    def told(**params: str) -> list[tuple[str, str]]:
        ws = server_a.connect(ticket["id"], key=tenant.key, after_seq=3 + len(markers), **params)
        markers.append(ws)  # a frame is read once the socket has told what changed: its echo comes after
        helpers.send(ws, type="message", body="marker")
        events = []
        while (event := helpers.next_event(ws))["type"] != "message.created":
            events.append((event["type"], event["message"]["id"]))
        assert event["message"]["body"] == "marker"
        return events

    def since(**ago: float) -> str:
        return (datetime.now(UTC) - timedelta(**ago)).isoformat()

    oldest_change_first = [("message.deleted", wrong["id"]), ("message.updated", typo["id"])]
    assert told(changed_since=since(hours=1)) == oldest_change_first
    assert told(changed_since=since(days=30)) == oldest_change_first  # 7 days at most
    assert told(changed_since=since(minutes=30)) == [("message.updated", typo["id"])]
    assert told(changed_since=since(seconds=5)) == []  # never less than the last 15 minutes...
    assert told() == []  # ...which is all a client that does not say is told
    for bad in ("yesterday", "2026-13-01T00:00:00Z", "9999-12-31T23:59:59-23:59", "1" * 300):
        assert helpers.refused_status(server_a, ticket["id"], key=tenant.key, changed_since=bad) == 422


def test_a_socket_told_only_the_newest_changes_says_more_changed(tenant, in_tenant, server_a):
    """Back after a long absence, a socket tells the newest `CHANGES_TOLD` changes, then `changes.truncated`
    when more changed since the client last heard: it must read the conversation again. A requester's count leaves out
    internal notes, which are neither told nor make them think they missed something."""
    requester = tenant.key_for(tenant.user("requester"))
    ticket = helpers.new_ticket(requester)
    for n in range(stream.CHANGES_TOLD):
        helpers.post_message(tenant.api, ticket["id"], body=f"reply {n}")
    for n in range(3):
        helpers.post_message(tenant.api, ticket["id"], body=f"note {n}", internal=True)
    with in_tenant(tenant) as session:  # every message edited while the clients were away, the notes last
        session.execute(sa.text(f'UPDATE "{current_tenant().schema}".messages SET body = body || \' (edited)\', '
                                "edited_at = now() - CASE WHEN seq <= 3 THEN interval '50 minutes' "
                                "ELSE interval '20 minutes' - seq * interval '1 second' END"))
        session.commit()

    markers = []

    def told(key: str, away: timedelta = timedelta(hours=1)) -> list[dict]:
        ws = server_a.connect(ticket["id"], key=key, after_seq=stream.CHANGES_TOLD + 3 + len(markers),
                              changed_since=(datetime.now(UTC) - away).isoformat())
        markers.append(ws)
        helpers.send(ws, type="message", body="marker")  # read once the socket has told what changed
        events = []
        while (event := helpers.next_event(ws))["type"] != "message.created":
            events.append(event)
        return events

    staff = told(tenant.key)
    assert [e["type"] for e in staff] == ["message.updated"] * stream.CHANGES_TOLD + ["changes.truncated"]
    assert [e["message"]["seq"] for e in staff[:-1]] == list(range(4, stream.CHANGES_TOLD + 4))  # the newest
    left_out = datetime.fromisoformat(staff[-1]["changed_at"])  # seq 3's edit, the newest not told
    assert timedelta(minutes=49) < datetime.now(UTC) - left_out < timedelta(minutes=51)
    # Changes left out that were made before `changed_since` are ones the client says it has heard.
    heard = told(tenant.key, away=timedelta(minutes=30))
    assert [e["type"] for e in heard] == ["message.updated"] * stream.CHANGES_TOLD
    mine = told(requester.key)
    assert [e["type"] for e in mine] == ["message.updated"] * stream.CHANGES_TOLD
    assert [e["message"]["body"] for e in mine] == [f"reply {n} (edited)" for n in range(stream.CHANGES_TOLD)]


def test_a_files_state_as_a_socket_tells_it_counts_its_reason():
    """A scan tried again may end as before with another reason: that is news the socket must send."""
    from app.conversation.stream import told_state

    first = {"type": "attachment.updated", "attachment": {"id": "a", "status": "scan_failed", "status_reason": "x"}}
    again = {"type": "attachment.updated", "attachment": {"id": "a", "status": "scan_failed", "status_reason": "y"}}
    assert told_state(first)[0] == told_state(again)[0] == "a" and told_state(first) != told_state(again)


def test_a_requesters_handshake_tells_nothing_of_internal_notes(tenant):
    """An `after_seq` past the last message was refused naming the ticket's last seq, notes included: a
    requester learned how many notes staff had written, and, asking again, when."""
    requester = tenant.key_for(tenant.user("requester"))
    ticket = helpers.new_ticket(requester)
    assert helpers.post_message(requester, ticket["id"], body="public").status_code == 201  # seq 1
    for n in range(3):
        assert helpers.post_message(tenant.api, ticket["id"], body=f"note {n}", internal=True).status_code == 201
    handshake = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    path = f"/api/v1/tickets/{ticket['id']}/stream"
    for after in (2, 4, 999):  # past what the requester sees, whether or not notes fill the gap
        refused = requester.get(f"{path}?after_seq={after}", headers=handshake)
        assert refused.status_code == 422
        assert refused.get_json()["errors"]["after_seq"] == ["Past the ticket's last message, whose seq is 1."]
    staff = tenant.api.get(f"{path}?after_seq=999", headers=handshake)
    assert staff.get_json()["errors"]["after_seq"] == ["Past the ticket's last message, whose seq is 4."]
