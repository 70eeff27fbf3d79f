"""Messages over REST: seq, threads, internal notes, validation, pages, edits, and tenant isolation."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from app.extensions import db
from tenants.names import schema_for
from tests.helpers import ApiClient, new_ticket, post_message, upload_file


def test_post_returns_the_contract_shape_and_seq_counts_up(tenant):
    ticket = new_ticket(tenant.api)
    first = post_message(tenant.api, ticket["id"], body="**Hi**")
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert set(body) >= {"id", "ticket_id", "author_id", "body", "parent_id", "internal", "attachments",
                         "created_at", "seq"}
    assert (body["seq"], body["body"], body["ticket_id"], body["author_id"]) == (1, "**Hi**", ticket["id"],
                                                                                tenant.admin_id)
    assert body["attachments"] == [] and body["parent_id"] is None and body["internal"] is False
    assert post_message(tenant.api, ticket["id"]).get_json()["seq"] == 2


def test_concurrent_posts_get_distinct_consecutive_seqs(app, tenant):
    ticket = new_ticket(tenant.api)

    def one(i: int) -> int:
        api = ApiClient(app.test_client(), tenant.key)
        resp = post_message(api, ticket["id"], body=f"message {i}")
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()["seq"]

    with ThreadPoolExecutor(8) as pool:
        seqs = sorted(pool.map(one, range(24)))
    assert seqs == list(range(1, 25))


def test_a_repeated_post_with_an_idempotency_key_creates_one_message(tenant):
    ticket = new_ticket(tenant.api)
    path = f"/api/v1/tickets/{ticket['id']}/messages"
    first = tenant.api.post(path, json={"body": "once"}, headers={"Idempotency-Key": "k1"})
    again = tenant.api.post(path, json={"body": "once"}, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert tenant.api.post(path, json={"body": "other"}, headers={"Idempotency-Key": "k1"}).status_code == 422
    assert [m["body"] for m in tenant.api.get(path).get_json()["items"]] == ["once"]


def test_replies_thread_under_a_parent_on_the_same_ticket(tenant):
    ticket, other = new_ticket(tenant.api), new_ticket(tenant.api)
    root = post_message(tenant.api, ticket["id"]).get_json()
    reply = post_message(tenant.api, ticket["id"], parent_id=root["id"]).get_json()
    nested = post_message(tenant.api, ticket["id"], parent_id=reply["id"])
    assert nested.status_code == 201 and nested.get_json()["parent_id"] == reply["id"]
    elsewhere = post_message(tenant.api, other["id"], parent_id=root["id"])
    assert elsewhere.status_code == 422  # well formed, but no such message on this ticket: 422 naming the field
    assert "parent_id" in elsewhere.get_json()["errors"]
    assert post_message(tenant.api, ticket["id"], parent_id=str(uuid.uuid4())).status_code == 422


def test_bad_input_is_refused_and_changes_nothing(tenant):
    ticket = new_ticket(tenant.api)
    path = f"/api/v1/tickets/{ticket['id']}/messages"
    cases = [
        {"body": "x" * (64 * 1024 + 1)},
        {"body": "   "},
        {"body": "\u200b"},  # only invisible characters: an empty message on every page
        {"body": "\n\u2060\ufeff\u00ad\t\u3164"},
        {"body": "\u202e"},
        {"body": "nul \x00 inside"},
        {},
        {"body": "ok", "parent_id": "not-a-uuid"},
        {"body": "ok", "attachment_ids": ["nope"]},
        {"body": "ok", "attachment_ids": "nope"},
        {"body": "ok", "internal": "maybe"},
        {"body": "ok", "colour": "red"},
    ]
    for case in cases:
        resp = tenant.api.post(path, json=case)
        assert resp.status_code == 422, (case, resp.get_json())
        assert resp.get_json()["code"] == 422
    malformed = tenant.api.post(path, data="{not json", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400
    assert tenant.api.get(path).get_json()["items"] == []


def test_a_body_or_title_of_invisible_characters_is_blank_and_one_visible_character_is_enough(tenant):
    ticket = new_ticket(tenant.api)
    path = f"/api/v1/tickets/{ticket['id']}/messages"
    message = tenant.api.post(path, json={"body": "first"}).get_json()
    for blank in ("\u200b", "\u200b\u200c\u200d", "\ufeff\n", "\u2800", "\u3164\u115f"):
        for method, url, body in (("post", path, {"body": blank}),
                                  ("patch", f"{path}/{message['id']}", {"body": blank}),
                                  ("post", "/api/v1/tickets", {"title": blank}),
                                  ("patch", f"/api/v1/tickets/{ticket['id']}", {"title": blank})):
            resp = getattr(tenant.api, method)(url, json=body)
            assert resp.status_code == 422 and "must not be blank" in json.dumps(resp.get_json()), (url, repr(blank))
    fine = ["a\u200bb", "\u200b.", "  \n:)\n"]
    for text in fine:
        assert tenant.api.post(path, json={"body": text}).get_json()["body"] == text
        assert tenant.api.post("/api/v1/tickets", json={"title": text}).get_json()["title"] == text
    assert [m["body"] for m in tenant.api.get(path).get_json()["items"]] == ["first", *fine]  # no blank one stored


def test_internal_notes_are_for_staff_only(tenant):
    requester_user = tenant.user("requester")
    requester = tenant.key_for(requester_user)
    agent = tenant.key_for(tenant.user("agent"))
    ticket = new_ticket(requester)
    assert post_message(requester, ticket["id"], internal=True).status_code == 403
    assert post_message(requester, ticket["id"], body="public question").status_code == 201
    note = post_message(agent, ticket["id"], body="secret note", internal=True).get_json()
    assert note["internal"] is True
    assert post_message(requester, ticket["id"], parent_id=note["id"]).status_code == 422
    seen_by_requester = requester.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]
    seen_by_agent = agent.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]
    assert [m["body"] for m in seen_by_requester] == ["public question"]
    assert [m["body"] for m in seen_by_agent] == ["public question", "secret note"]
    assert requester.get(f"/api/v1/tickets/{ticket['id']}/messages/{note['id']}").status_code == 404


def test_first_agent_reply_sets_first_response_time(tenant):
    requester = tenant.key_for(tenant.user("requester"))
    agent = tenant.key_for(tenant.user("agent"))
    ticket = new_ticket(requester)
    post_message(requester, ticket["id"])
    post_message(agent, ticket["id"], internal=True)
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()["first_response_at"] is None
    reply = post_message(agent, ticket["id"], body="On it").get_json()
    first = tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()["first_response_at"]
    assert first is not None
    post_message(agent, ticket["id"], body="Still on it")
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()["first_response_at"] == first
    assert reply["seq"] == 3


@pytest.mark.parametrize("with_file", [False, True])
def test_an_internal_note_changes_nothing_a_requester_sees_of_their_ticket(tenant, with_file):
    """Its version (the ETag) and `updated_at` stay, so their cache, If-Match and updated order do
    too; a public message moves both."""
    requester = tenant.key_for(tenant.user("requester"))
    agent = tenant.key_for(tenant.user("agent"))
    ticket = new_ticket(requester)
    path = f"/api/v1/tickets/{ticket['id']}"
    newer = new_ticket(requester, "Newer")
    before = requester.get(path)
    order = [t["id"] for t in requester.get("/api/v1/tickets?sort=-updated_at").get_json()["items"]]
    extra = {}
    if with_file:  # the session's path, which locks and checks each file
        extra["attachment_ids"] = [upload_file(agent, ticket["id"], b"x", "n.txt", "text/plain").get_json()["id"]]
    assert post_message(agent, ticket["id"], body="between us", internal=True, **extra).status_code == 201
    assert requester.get(path).get_json() == before.get_json()
    assert requester.get(path, headers={"If-None-Match": before.headers["ETag"]}).status_code == 304
    assert [t["id"] for t in requester.get("/api/v1/tickets?sort=-updated_at").get_json()["items"]] == order
    assert requester.patch(path, json={"title": "Still mine"},
                           headers={"If-Match": before.headers["ETag"]}).status_code == 200
    after_patch = requester.get(path)
    assert post_message(agent, ticket["id"], body="for you").status_code == 201
    moved = requester.get(path).get_json()
    assert moved["version"] == after_patch.get_json()["version"] + 1
    assert moved["updated_at"] > after_patch.get_json()["updated_at"]
    assert [t["id"] for t in requester.get("/api/v1/tickets?sort=-updated_at").get_json()["items"]][:2] == [
        ticket["id"], newer["id"]]


def test_list_after_seq_and_cursor_pages_in_seq_order(tenant):
    ticket = new_ticket(tenant.api)
    for i in range(7):
        post_message(tenant.api, ticket["id"], body=f"m{i}")
    path = f"/api/v1/tickets/{ticket['id']}/messages"
    after = tenant.api.get(path + "?after_seq=4").get_json()
    assert [m["seq"] for m in after["items"]] == [5, 6, 7] and after["next_cursor"] is None
    seqs, cursor = [], None
    while True:
        page = tenant.api.get(path + "?limit=3" + (f"&cursor={cursor}" if cursor else "")).get_json()
        seqs += [m["seq"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seqs == list(range(1, 8))
    assert tenant.api.get(path + "?cursor=garbage").status_code == 422  # well formed, but not one we signed
    assert tenant.api.get(path + "?cursor=not%20a%20cursor").status_code == 422
    assert tenant.api.get(path + "?after_seq=-1").status_code == 422
    assert tenant.api.get(path + "?limit=1000").status_code == 422


def test_a_cursor_of_another_tickets_messages_is_refused(tenant):
    first, second = new_ticket(tenant.api, "A"), new_ticket(tenant.api, "B")
    for ticket in (first, second):
        for body in ("1", "2", "3"):
            post_message(tenant.api, ticket["id"], body=body)
    cursor = tenant.api.get(f"/api/v1/tickets/{first['id']}/messages?limit=2").get_json()["next_cursor"]
    assert tenant.api.get(f"/api/v1/tickets/{first['id']}/messages?cursor={cursor}").get_json()["items"][0]["seq"] == 3
    refused = tenant.api.get(f"/api/v1/tickets/{second['id']}/messages?cursor={cursor}")
    assert refused.status_code == 422 and "cursor" in refused.get_json()["errors"]


def test_edit_and_delete_keep_history_in_the_audit_log(app, tenant):
    author = tenant.key_for(tenant.user("agent"))
    other_agent = tenant.key_for(tenant.user("agent"))
    ticket = new_ticket(tenant.api)
    message = post_message(author, ticket["id"], body="first words").get_json()
    path = f"/api/v1/tickets/{ticket['id']}/messages/{message['id']}"
    assert other_agent.patch(path, json={"body": "hijack"}).status_code == 403
    edited = author.patch(path, json={"body": "better words"})
    assert edited.status_code == 200 and edited.get_json()["body"] == "better words"
    assert edited.get_json()["edited_at"] is not None
    assert author.patch(path, json={"body": ""}).status_code == 422
    assert tenant.api.delete(path).status_code == 204
    assert tenant.api.get(path).status_code == 404
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"] == []
    assert post_message(tenant.api, ticket["id"]).get_json()["seq"] == 2
    with app.app_context():
        rows = db.session.execute(sa.text(
            f'select action, "before" from "{schema_for(tenant.slug)}".audit_log '
            "where entity = 'message' and entity_id = :id order by id"), {"id": message["id"]}).all()
    assert [(r.action, (r.before or {}).get("body")) for r in rows] == [("edited", "first words"),
                                                                        ("deleted", "better words")]


def test_stream_token_is_issued_for_visible_tickets_only(tenant):
    requester = tenant.key_for(tenant.user("requester"))
    ticket = new_ticket(tenant.api)
    resp = tenant.api.post(f"/api/v1/tickets/{ticket['id']}/stream-token")
    assert resp.status_code == 201
    assert len(resp.get_json()["token"]) > 20 and resp.get_json()["expires_in"] > 0
    assert requester.post(f"/api/v1/tickets/{ticket['id']}/stream-token").status_code == 404


def test_another_tenant_gets_404_on_every_endpoint(tenant, other_tenant):
    ticket = new_ticket(tenant.api)
    message = post_message(tenant.api, ticket["id"]).get_json()
    base = f"/api/v1/tickets/{ticket['id']}"
    stranger = other_tenant.api
    assert stranger.get(base + "/messages").status_code == 404
    assert post_message(stranger, ticket["id"]).status_code == 404
    assert stranger.get(f"{base}/messages/{message['id']}").status_code == 404
    assert stranger.patch(f"{base}/messages/{message['id']}", json={"body": "x"}).status_code == 404
    assert stranger.delete(f"{base}/messages/{message['id']}").status_code == 404
    assert stranger.post(base + "/stream-token").status_code == 404
    assert tenant.api.get(base + "/messages").get_json()["items"][0]["body"] == "hello"
    unauthenticated = ApiClient(tenant.api.client, None)
    assert unauthenticated.get(base + "/messages").status_code == 401


def test_openapi_documents_the_conversation(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    paths = spec["paths"]
    assert set(paths["/api/v1/tickets/{ticket_id}/messages"]) >= {"get", "post"}
    assert "post" in paths["/api/v1/tickets/{ticket_id}/stream-token"]
    stream = spec["x-websockets"]["/api/v1/tickets/{ticket_id}/stream"]["get"]  # a WebSocket, not a path
    assert "101" in stream["responses"] and "/api/v1/tickets/{ticket_id}/stream" not in paths


def test_an_unknown_list_parameter_answers_422_naming_it(tenant):
    """A misspelt `after_seq` must not quietly return every message, as the other lists refuse it too."""
    ticket = new_ticket(tenant.api)
    for i in range(3):
        post_message(tenant.api, ticket["id"], body=f"m{i}")
    path = f"/api/v1/tickets/{ticket['id']}/messages"
    for query, name in (("afterseq=2", "afterseq"), ("bogus=1", "bogus"), ("after_seq=1&Limit=1", "Limit")):
        resp = tenant.api.get(f"{path}?{query}")
        assert resp.status_code == 422, (query, resp.get_json())
        assert name in resp.get_json()["errors"]
    assert [m["seq"] for m in tenant.api.get(f"{path}?after_seq=2").get_json()["items"]] == [3]


@pytest.mark.parametrize("with_file", [False, True])
def test_a_public_reply_to_an_internal_note_is_refused_so_requesters_never_learn_its_id(tenant, with_file):
    """A public reply carries its parent's id to the requester; under a note it must be a note too."""
    requester = tenant.key_for(tenant.user("requester"))
    agent = tenant.key_for(tenant.user("agent"))
    ticket = new_ticket(requester)
    note = post_message(agent, ticket["id"], body="secret note", internal=True).get_json()
    extra = {}
    if with_file:  # the session's path, which locks and checks each file
        extra["attachment_ids"] = [upload_file(agent, ticket["id"], b"hello", "a.txt", "text/plain").get_json()["id"]]
    refused = post_message(agent, ticket["id"], body="public answer", parent_id=note["id"], **extra)
    assert refused.status_code == 422, refused.get_json()
    assert "parent_id" in refused.get_json()["errors"]
    as_note = post_message(agent, ticket["id"], body="noted", parent_id=note["id"], internal=True, **extra)
    assert as_note.status_code == 201 and as_note.get_json()["parent_id"] == note["id"]
    public = post_message(agent, ticket["id"], body="public answer")
    assert public.status_code == 201
    seen = requester.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]
    assert [m["body"] for m in seen] == ["public answer"]
    assert note["id"] not in json.dumps(seen)
    assert [m["seq"] for m in agent.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]] == [1, 2, 3]


@pytest.mark.parametrize("status", ["pending", "resolved"])
@pytest.mark.parametrize("with_file", [False, True])
def test_a_requesters_reply_reopens_a_ticket_waiting_on_them_or_solved(tenant, status, with_file):
    """As in every help desk: the customer answering means the team has work again."""
    requester = tenant.key_for(tenant.user("requester"))
    agent_user = tenant.user("agent")
    agent = tenant.key_for(agent_user)
    ticket = new_ticket(requester)
    path = f"/api/v1/tickets/{ticket['id']}"
    assert tenant.api.patch(path, json={"assignee_id": agent_user["id"]}).status_code == 200
    assert tenant.api.patch(path, json={"status": status}).status_code == 200
    assert post_message(agent, ticket["id"], body="Any news?").status_code == 201  # staff: no change
    assert tenant.api.get(path).get_json()["status"] == status
    extra = {}
    if with_file:  # the session's path, which locks and checks each file
        extra["attachment_ids"] = [upload_file(requester, ticket["id"], b"log", "a.txt", "text/plain").get_json()["id"]]
    assert post_message(requester, ticket["id"], body="Still broken.", **extra).status_code == 201
    after = tenant.api.get(path).get_json()
    assert (after["status"], after["resolved_at"]) == ("open", None)
    changes = tenant.api.get(f"/api/v1/audit-events?entity_type=ticket&entity_id={ticket['id']}").get_json()["items"]
    assert any(e["action"] == "reopened" for e in changes)
    events = tenant.api.get("/api/v1/events?types=ticket.updated").get_json()["items"]
    assert any(e["data"]["ticket"]["id"] == ticket["id"] and e["data"]["ticket"]["status"] == "open" for e in events)


@pytest.mark.parametrize("with_idempotency_key", [False, True])
def test_a_requesters_reply_and_the_reopen_it_makes_are_stored_together(tenant, monkeypatch, with_idempotency_key):
    """The reply was stored in one transaction and the reopen in a second, whose failure was logged and
    let go: the reply answered 201 on a ticket left resolved, where no queue shows it."""
    from sqlalchemy.exc import OperationalError

    from app.conversation import services

    requester = tenant.key_for(tenant.user("requester"))
    ticket = new_ticket(requester)
    path = f"/api/v1/tickets/{ticket['id']}"
    assert tenant.api.patch(path, json={"status": "resolved"}).status_code == 200

    def fails(*_args, **_kwargs):
        raise OperationalError("UPDATE tickets", {}, Exception("lock timeout"))

    monkeypatch.setattr(services, "reopen_answered", fails)
    headers = {"Idempotency-Key": "reply-1"} if with_idempotency_key else {}
    refused = requester.post(f"{path}/messages", json={"body": "Still broken."}, headers=headers)
    assert refused.status_code == 503 and tenant.api.get(f"{path}/messages").get_json()["items"] == []
    assert tenant.api.get(path).get_json()["status"] == "resolved"
    monkeypatch.undo()
    stored = requester.post(f"{path}/messages", json={"body": "Still broken."}, headers=headers)
    assert stored.status_code == 201 and tenant.api.get(path).get_json()["status"] == "new"
    assert [m["seq"] for m in tenant.api.get(f"{path}/messages").get_json()["items"]] == [1]


def test_one_key_down_the_file_path_and_the_plain_path_at_once_is_one_message(app, tenant):
    """The path with files claimed the key, then locked the ticket; the one-statement path locks the ticket,
    then claims the key. Sent at once with one key, the two deadlocked, and one answered 503."""
    import threading
    import time

    ticket = new_ticket(tenant.api)
    file_id = upload_file(tenant.api, ticket["id"], b"log", "a.txt", "text/plain").get_json()["id"]
    with app.app_context():
        holder = db.engine.connect()  # holds the ticket's row, so both requests line up behind it
    holder.execute(sa.text(f'select 1 from "{schema_for(tenant.slug)}".tickets where id = :id for update'),
                   {"id": ticket["id"]})
    answers, headers = {}, {"Authorization": f"Bearer {tenant.key}", "Idempotency-Key": "one-key"}

    def post(name: str, body: dict) -> threading.Thread:
        sender = threading.Thread(target=lambda: answers.__setitem__(name, app.test_client().post(
            f"/api/v1/tickets/{ticket['id']}/messages", json=body, headers=headers)))
        sender.start()
        time.sleep(0.5)  # until it waits for the ticket's row
        return sender

    senders = [post("plain", {"body": "hi"}), post("file", {"body": "hi", "attachment_ids": [file_id]})]
    holder.commit()
    holder.close()
    for sender in senders:
        sender.join(30)
    assert sorted(a.status_code for a in answers.values()) == [201, 422]  # one key, two requests
    assert len(tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]) == 1


@pytest.mark.parametrize("with_file", [False, True])
def test_a_requester_cannot_write_to_their_closed_ticket_but_may_reopen_it(tenant, with_file):
    """A closed ticket is in no queue, so a requester's message there would reach nobody: it is
    refused (409, nothing stored, the ticket unchanged), as their page offers to reopen instead.
    Staff may still add to it."""
    requester = tenant.key_for(tenant.user("requester"))
    agent = tenant.key_for(tenant.user("agent"))
    ticket = new_ticket(requester)
    path = f"/api/v1/tickets/{ticket['id']}"
    extra = {}
    if with_file:  # the session's path, which locks and checks each file
        extra["attachment_ids"] = [upload_file(requester, ticket["id"], b"log", "a.txt", "text/plain").get_json()["id"]]
    closed = requester.post(f"{path}/close", json={}).get_json()
    refused = post_message(requester, ticket["id"], body="Thanks!", **extra)
    assert refused.status_code == 409, refused.get_json()
    assert refused.get_json()["message"] == "This ticket is closed; reopen it to write again."
    assert tenant.api.get(path).get_json() == closed
    assert agent.get(f"{path}/messages").get_json()["items"] == []
    mine = post_message(agent, ticket["id"], body="placeholder").get_json()  # staff may edit theirs
    assert agent.patch(f"{path}/messages/{mine['id']}", json={"body": "For the record"}).status_code == 200
    assert tenant.api.delete(f"{path}/messages/{mine['id']}").status_code == 204
    # Staff may still write, a note or a reply, without reopening it.
    assert post_message(agent, ticket["id"], body="noted", internal=True).status_code == 201
    assert post_message(agent, ticket["id"], body="For the record: fixed in 2.1.").status_code == 201
    assert tenant.api.get(path).get_json()["status"] == "closed"
    # Reopened, the requester writes again.
    assert requester.post(f"{path}/reopen").status_code == 200
    written = post_message(requester, ticket["id"], body="It is back.", **extra).get_json()
    assert requester.post(f"{path}/close", json={}).status_code == 200
    edited = requester.patch(f"{path}/messages/{written['id']}", json={"body": "changed after the close"})
    assert edited.status_code == 409, edited.get_json()  # nor may they edit there
    deleted = requester.delete(f"{path}/messages/{written['id']}")
    assert deleted.status_code == 409, deleted.get_json()  # nor delete
    assert deleted.get_json()["message"] == "This ticket is closed; reopen it to write again."
    assert agent.get(f"{path}/messages").get_json()["items"][-1]["body"] == "It is back."
    if with_file:  # nor delete a file they sent there
        sent = extra["attachment_ids"][0]
        assert requester.delete(f"/api/v1/attachments/{sent}").status_code == 409
        assert agent.get(f"/api/v1/attachments/{sent}").status_code == 200


def test_two_requester_replies_at_once_on_a_resolved_ticket_are_both_stored(app, tenant, monkeypatch):
    """Both missed the one-statement path (the ticket resolved); the first, on the session's path, reopened
    it before the second looked again, which then found nothing wrong and answered 409 as a key in progress."""
    import threading

    from app.conversation import writes

    requester = tenant.key_for(tenant.user("requester"))
    ticket = new_ticket(requester)
    path = f"/api/v1/tickets/{ticket['id']}"
    assert tenant.api.patch(path, json={"status": "resolved"}).status_code == 200
    both_missed, first_stored, real = threading.Barrier(2, timeout=30), threading.Event(), writes._not_posted

    def one_after_the_other(conn, kind, params, claim):
        both_missed.wait()
        if params["body"] == "second":
            assert first_stored.wait(30)
        return real(conn, kind, params, claim)

    monkeypatch.setattr(writes, "_not_posted", one_after_the_other)
    answers = {}

    def send(body: str) -> None:
        answers[body] = ApiClient(app.test_client(), requester.key).post(f"{path}/messages", json={"body": body})
        if body == "first":
            first_stored.set()

    senders = [threading.Thread(target=send, args=(body,)) for body in ("first", "second")]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(60)
    assert [answers[b].status_code for b in ("first", "second")] == [201, 201]
    assert [m["body"] for m in tenant.api.get(f"{path}/messages").get_json()["items"]] == ["first", "second"]


@pytest.mark.parametrize("way", ["one statement", "session"])
@pytest.mark.parametrize("change", ["edit", "delete"])
def test_a_requesters_change_racing_a_reply_to_the_message_does_not_deadlock(app, tenant, monkeypatch, change, way):
    """The change locked the message FOR UPDATE, then the ticket; a reply locked the ticket, then its parent
    FOR KEY SHARE (the foreign key). Each waited for the other: one answered 503, 14 times in 60 plain tries.
    Now both take the message first: the reply waits for the change, and a reply to a message deleted
    meanwhile is refused, not stored under it."""
    import threading
    import time

    from app.conversation import services

    requester = tenant.key_for(tenant.user("requester"))
    ticket = new_ticket(requester)
    message = post_message(requester, ticket["id"], body="my printer smokes").get_json()
    path = f"/api/v1/tickets/{ticket['id']}/messages"
    real_hold = services.hold_open_for

    def slow_hold(actor, ticket_id):  # widens the window between the change's two locks
        time.sleep(0.5)
        return real_hold(actor, ticket_id)

    monkeypatch.setattr(services, "hold_open_for", slow_hold)
    if way == "session":  # as a reply with files takes
        from app.conversation import writes
        monkeypatch.setattr(writes, "post_message", lambda *args, **kwargs: None)
    own, answered = ApiClient(app.test_client(), requester.key), {}

    def change_it():
        answered["change"] = (own.patch(f"{path}/{message['id']}", json={"body": "edited"}) if change == "edit"
                              else own.delete(f"{path}/{message['id']}"))

    worker = threading.Thread(target=change_it)
    worker.start()
    time.sleep(0.2)
    reply = ApiClient(app.test_client(), tenant.key).post(
        path, json={"body": "which model?", "parent_id": message["id"]})
    worker.join(20)
    assert answered["change"].status_code in (200, 204)
    if change == "edit":
        assert reply.status_code == 201, reply.get_json()
    else:
        assert reply.status_code == 422 and "parent_id" in reply.get_json()["errors"], reply.get_json()
        assert [m["body"] for m in tenant.api.get(path).get_json()["items"] if m.get("body")] == []
