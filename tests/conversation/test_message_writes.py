"""A message posted in one statement answers, records and replays as the declared schema and the session path do."""

from __future__ import annotations

import json

import sqlalchemy as sa

from app.conversation.models import Message
from app.conversation.schemas import MessageSchema
from app.outbox.models import Event
from app.tickets.models import Ticket
from tests.helpers import new_ticket, post_message


def test_a_posted_message_writes_every_field_as_the_declared_schema_does(tenant, in_tenant):
    """Each shape of post (plain, reply, note, a requester's): the response equals `MessageSchema().dump` of the row."""
    requester = tenant.key_for(tenant.user("requester"))
    agent = tenant.key_for(tenant.user("agent"))
    ticket = new_ticket(requester)
    posted = [post_message(requester, ticket["id"], body="**first** é")]
    posted.append(post_message(agent, ticket["id"], body="reply", parent_id=posted[0].get_json()["id"]))
    posted.append(post_message(agent, ticket["id"], body="note", internal=True))
    posted.append(post_message(tenant.api, ticket["id"], body="as admin"))
    assert [p.status_code for p in posted] == [201] * 4
    declared = MessageSchema()
    with in_tenant(tenant) as session:
        for response in posted:
            body = response.get_json()
            message = session.get(Message, body["id"])
            expected = json.loads(json.dumps(declared.dump(message)))
            assert list(body) == list(declared.dump_fields)
            for field in declared.dump_fields:
                assert body[field] == expected[field], field
            event = session.execute(
                sa.select(Event).where(Event.payload["message_id"].astext == body["id"])).scalar_one()
            assert (event.type, event.payload, event.data) == (
                "message.created", {"ticket_id": ticket["id"], "message_id": body["id"]}, {"message": body})
    assert [p.get_json()["seq"] for p in posted] == [1, 2, 3, 4]


def test_a_post_keeps_the_tickets_bookkeeping(tenant, in_tenant):
    """The seq counter, the activity time and the first response move as the session path moves them."""
    requester = tenant.key_for(tenant.user("requester"))
    agent = tenant.key_for(tenant.user("agent"))
    ticket = new_ticket(requester)
    post_message(requester, ticket["id"])
    after_requester = tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()
    assert after_requester["updated_at"] > ticket["updated_at"] and after_requester["first_response_at"] is None
    post_message(agent, ticket["id"], internal=True)
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()["first_response_at"] is None
    post_message(agent, ticket["id"])
    with in_tenant(tenant) as session:
        row = session.get(Ticket, ticket["id"])
        assert row.last_message_seq == 3 and row.first_response_at is not None


def test_a_replay_is_the_first_response_byte_for_byte(tenant):
    ticket = new_ticket(tenant.api)
    path = f"/api/v1/tickets/{ticket['id']}/messages"
    first = tenant.api.post(path, json={"body": "once"}, headers={"Idempotency-Key": "bytes"})
    again = tenant.api.post(path, json={"body": "once"}, headers={"Idempotency-Key": "bytes"})
    assert first.status_code == again.status_code == 201
    assert again.get_data() == first.get_data() and again.headers["Idempotent-Replayed"] == "true"


def test_a_refused_post_keeps_no_key_and_takes_no_seq(tenant):
    """A 404 or 422 stores nothing under the key, so the same key works once the request is right."""
    requester = tenant.key_for(tenant.user("requester"))
    ticket, elsewhere = new_ticket(requester), new_ticket(tenant.api)
    path = f"/api/v1/tickets/{ticket['id']}/messages"
    key = {"Idempotency-Key": "retry-me"}
    assert requester.post(f"/api/v1/tickets/{elsewhere['id']}/messages", json={"body": "x"},
                          headers=key).status_code == 404
    bad_parent = requester.post(path, json={"body": "x", "parent_id": elsewhere["id"]}, headers=key)
    assert bad_parent.status_code == 422 and "parent_id" in bad_parent.get_json()["errors"]
    assert requester.post(path, json={"body": "x"}, headers=key).get_json()["seq"] == 1
    assert requester.post(path, json={"body": "x"}, headers=key).headers["Idempotent-Replayed"] == "true"
    assert requester.post(path, json={"body": "y"}, headers=key).status_code == 422
