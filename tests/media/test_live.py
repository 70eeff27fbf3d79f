"""Attachments on the ticket's live stream (the app in gunicorn): `attachment.updated` on each state
change, never to a requester for files they may not see, and `attachment_ids` in socket frames."""

from __future__ import annotations

import json

import pytest
import websocket

from tests.helpers import new_ticket, next_event, post_message, send
from tests.media import samples


@pytest.fixture
def sockets(live_server):
    opened: list[websocket.WebSocket] = []

    def connect(ticket_id: str, key: str) -> websocket.WebSocket:
        url = f"ws://127.0.0.1:{live_server.port}/api/v1/tickets/{ticket_id}/stream"
        ws = websocket.create_connection(url, header=[f"Authorization: Bearer {key}"], timeout=10)
        opened.append(ws)
        return ws

    yield connect
    for ws in opened:
        ws.close()


def attachment_events(ws, count: int) -> list[dict]:
    return [next_event(ws, "attachment.updated", timeout=10)["attachment"] for _ in range(count)]


def test_each_state_change_reaches_the_stream_and_staff_drafts_never_reach_the_requester(
        tenant, upload, run_scans, sockets):
    requester = tenant.user("requester")
    requester_api = tenant.key_for(requester)
    agent_api = tenant.key_for(tenant.user("agent"))
    ticket = new_ticket(requester_api)
    staff_ws, requester_ws = sockets(ticket["id"], agent_api.key), sockets(ticket["id"], requester_api.key)

    draft = upload(agent_api, ticket["id"], samples.text(), "draft.txt").get_json()
    mine = upload(requester_api, ticket["id"], samples.eicar(), "mine.txt").get_json()
    assert [(a["id"], a["status"]) for a in attachment_events(staff_ws, 2)] == [
        (draft["id"], "pending"), (mine["id"], "pending")]
    got = attachment_events(requester_ws, 1)[0]
    assert (got["id"], got["status"], got["internal"]) == (mine["id"], "pending", False)

    run_scans(tenant)
    staff_seen = {a["id"]: a["status"] for a in attachment_events(staff_ws, 2)}
    assert staff_seen == {draft["id"]: "clean", mine["id"]: "infected"}
    got = attachment_events(requester_ws, 1)[0]
    assert (got["id"], got["status"]) == (mine["id"], "infected")
    # the draft's events were never sent to the requester: the next thing they see is a message
    post_message(requester_api, ticket["id"], body="ping")
    assert next_event(requester_ws)["type"] == "message.created"


def test_an_internal_notes_file_stays_off_the_requesters_stream(tenant, upload, run_scans, sockets):
    requester_api = tenant.key_for(tenant.user("requester"))
    agent_api = tenant.key_for(tenant.user("agent"))
    ticket = new_ticket(requester_api)
    requester_ws = sockets(ticket["id"], requester_api.key)
    note_file = upload(agent_api, ticket["id"], samples.pdf(), "internal.pdf").get_json()
    post_message(agent_api, ticket["id"], body="note", internal=True, attachment_ids=[note_file["id"]])
    run_scans(tenant)
    public = upload(requester_api, ticket["id"], samples.text(), "a.txt").get_json()
    first = next_event(requester_ws, timeout=10)
    assert first["type"] == "attachment.updated" and first["attachment"]["id"] == public["id"]


def test_socket_frames_send_attachments_as_the_rest_call_does(tenant, upload, run_scans, sockets):
    ticket = new_ticket(tenant.api)
    ws = sockets(ticket["id"], tenant.key)
    body = upload(tenant.api, ticket["id"], samples.png(), "screen.png").get_json()
    assert attachment_events(ws, 1)[0]["status"] == "pending"
    send(ws, type="message", body="with a screenshot", attachment_ids=[body["id"]], ref="r1")
    message = next_event(ws, "message.created", timeout=10)["message"]
    assert [a["id"] for a in message["attachments"]] == [body["id"]]
    assert set(message["attachments"][0]) >= {"id", "filename", "content_type", "size", "status", "thumbnail_url"}
    send(ws, type="message", body="again", attachment_ids=[body["id"]], ref="r2")
    error = next_event(ws, "error", timeout=10)
    assert error["code"] == 422 and error["ref"] == "r2" and "attachment_ids" in error["errors"]
    send(ws, type="message", body="bad", attachment_ids="nope", ref="r3")
    assert next_event(ws, "error", timeout=10)["code"] == 422
    run_scans(tenant)
    updated = attachment_events(ws, 1)[0]
    assert updated["status"] == "clean" and updated["thumbnail_url"] and updated["message_id"] == message["id"]
    listed = tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]
    assert json.dumps([m["attachments"][0]["id"] for m in listed]) == json.dumps([body["id"]])


def test_a_new_socket_hears_of_the_scans_that_ended_before_it_listened(tenant, upload, run_scans, sockets):
    """A page is made, its file's scan ends, then its socket opens: the socket says how the scan ended
    (the page showed the file "scanning" until reloaded). A requester hears only of their own files."""
    requester_api = tenant.key_for(tenant.user("requester"))
    agent_api = tenant.key_for(tenant.user("agent"))
    ticket = new_ticket(requester_api)
    mine = upload(requester_api, ticket["id"], samples.text(), "mine.txt").get_json()
    draft = upload(agent_api, ticket["id"], samples.text(), "draft.txt").get_json()  # staff only, unsent
    assert post_message(requester_api, ticket["id"], body="here", attachment_ids=[mine["id"]]).status_code == 201
    run_scans(tenant)

    staff = sockets(ticket["id"], agent_api.key)
    assert next_event(staff, "message.created")["message"]["body"] == "here"  # the catch-up comes first
    assert {(a["id"], a["status"]) for a in attachment_events(staff, 2)} == {
        (mine["id"], "clean"), (draft["id"], "clean")}
    requester = sockets(ticket["id"], requester_api.key)
    assert next_event(requester, "message.created")["message"]["body"] == "here"
    assert [(a["id"], a["status"]) for a in attachment_events(requester, 1)] == [(mine["id"], "clean")]
    post_message(agent_api, ticket["id"], body="ping")
    assert next_event(requester)["type"] == "message.created"  # and nothing of the draft before it
