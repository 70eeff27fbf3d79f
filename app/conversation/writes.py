"""A new message in one round trip: its seq, the message, its event, outbox rows and webhook
deliveries, and the Idempotency-Key's claim with the response to replay, in one statement.

Through the session a post took a BEGIN, the ticket's UPDATE (seq, activity, first response),
the parent's SELECT, the INSERTs of the message, event and outbox rows, and a COMMIT, then a
Redis call to hand the rows on. Here one statement with data-modifying CTEs does it on an
autocommit connection, as `app.tickets.writes` does for a new ticket, and then wakes the outbox
relay. The checks are the same: the ticket must be one the author may see (and, for its requester,
not closed), a parent must be a live message of that ticket the author may see (and public, unless
the post is an internal note too), and only staff write internal notes. When the statement writes
nothing, a second look tells why (a replay, 404, 409 or 422); that is never the path of a message
that is posted.

The body and the event are made from `MessageSchema` with a stand-in seq that SQL replaces.
Messages with attachments go through `services.post_message`, which locks and checks each file.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from types import SimpleNamespace
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from flask import Response
from sqlalchemy.dialects.postgresql import JSONB, insert

from app.api_common import json_response
from app.at_once import STAND_IN, Spliced, jsonb
from app.auth.actor import Actor
from app.conversation.models import Message
from app.conversation.schemas import MessageSchema
from app.conversation.services import (
    REQUESTER,
    STAFF_NOTE,
    STAFF_REPLY,
    bumped_by,
    check_may_post,
    held_parent,
    message_json,
    no_such_parent,
    note_parent,
)
from app.conversation.services import post_message as post
from app.errors import Conflict, NotFound
from app.extensions import db
from app.idempotency import Claim, claim_in_sql, once_in_session, stored_response
from app.markdown import render
from app.outbox import recorded_in_sql, recorded_params
from app.outbox.wakes import wake_relay
from app.realtime import publish_committed
from app.schemas import fast_dumper
from app.tickets.models import Ticket
from app.tickets.services import CLOSED_TO_REQUESTER, REOPENED_BY_REPLY
from tenants import TenantStatement, autocommit_connection

TOPIC = "message.created"
TICKETS, MESSAGES = Ticket.__table__, Message.__table__
# A message posted here has no files (those go through `services.post_message`), so its JSON needs
# no nested schema: `MessageSchema`'s own fields, dumped from plain values without an ORM object.
_new_message_json = fast_dumper(MessageSchema())


@dataclass(frozen=True)
class Posted:
    """A posted message's response body and its contract JSON, or the replay of an earlier response."""

    body: bytes
    message: dict[str, Any]
    replay: Response | None = None


def post_message(actor: Actor, ticket_id: uuid.UUID, claim: Claim | None, body: str,
                 parent_id: uuid.UUID | None = None, internal: bool = False) -> Posted | None:
    """Add a message as `services.post_message` does, in one statement, and publish it; replay for `claim`.

    None, having written nothing, for a requester's reply that reopens their ticket: `post_in_session`
    stores both at once (a reopen of its own, after the message's commit, could fail and leave the
    answered ticket resolved, where no queue shows it).
    """
    check_may_post(actor, ticket_id, internal)
    message = {"id": uuid.uuid4(), "ticket_id": ticket_id, "seq": STAND_IN, "parent_id": parent_id,
               "author_id": actor.user_id, "internal": internal, "body": body, "body_html": render(body),
               "created_at": datetime.now(UTC), "edited_at": None, "attachments": []}
    json_body = _new_message_json(SimpleNamespace(**message))
    spliced = Spliced.around(orjson.dumps(json_body), "seq")
    kind = STAFF_NOTE if actor.is_staff and internal else STAFF_REPLY if actor.is_staff else REQUESTER
    params: dict[str, Any] = {
        **{c: message[c] for c in _GIVEN}, **recorded_params(TOPIC), **spliced.params(),
        "event_payload": jsonb({"ticket_id": str(ticket_id), "message_id": str(message["id"])}),
        "event_data": jsonb({"message": json_body}),
    }
    if claim is not None:
        params.update(claim.params(201, {}))
    with autocommit_connection() as conn:
        row = _statement(kind, parent_id is not None, claim is not None).one(conn, params)
        if row is None:
            replay = _not_posted(conn, kind, params, claim)
            return None if replay is None else Posted(b"", {}, replay=replay)
    wake_relay()
    json_body["seq"] = row[0]
    posted = spliced.with_number(row[0])
    publish_committed(ticket_id, b'{"type":"message.created","message":%s}' % posted)
    return Posted(posted, json_body)


def post_in_session(actor: Actor, ticket_id: uuid.UUID, claim: Claim | None, fields: dict[str, Any]) -> Response:
    """Post through the session (`services.post_message`: files, a reopen), once per `claim`; answer 201.

    The parent (if any), then the ticket are locked before the key is claimed, the order the one-statement
    path takes them in: two posts with one key, one down each path, deadlocked (a 503 after a second's
    wait), and so did a reply and a requester's edit of its parent.
    """
    if fields.get("parent_id") is not None:
        held_parent(fields["parent_id"])
    db.session.execute(sa.select(Ticket.id).where(Ticket.id == ticket_id).with_for_update(key_share=True))
    return once_in_session(claim, lambda: json_response(message_json(post(actor, ticket_id, **fields)), 201))


def _not_posted(conn: Any, kind: str, params: dict[str, Any], claim: Claim | None) -> Response | None:
    """Say why nothing was written: the key's earlier response, or the refusal the session path gives; else
    None, for the session path to post it: a reply that reopens its ticket, or one whose ticket changed
    between the two statements (reopened by another reply meanwhile, say), or whose key's first request
    let go of it meanwhile (the session path waits for a claim in progress, or takes it over)."""
    if claim is not None:
        earlier = stored_response(conn, claim)
        if earlier is not None:
            return earlier
    found = _check(kind, params["parent_id"] is not None).one(conn, params)
    if found is None:
        raise NotFound("No such ticket.")
    seen, answerable, writable = found
    if not writable:
        raise Conflict(CLOSED_TO_REQUESTER)
    if not seen:
        raise no_such_parent()
    if not answerable:
        raise note_parent()
    return None


_GIVEN = ("id", "ticket_id", "parent_id", "author_id", "internal", "body", "body_html", "created_at")


def _param(column: str) -> sa.BindParameter:
    return sa.bindparam(column, type_=MESSAGES.c[column].type)


class Conditions(NamedTuple):
    ticket: list[sa.ColumnElement[bool]]
    seen: sa.ColumnElement[bool]
    answerable: sa.ColumnElement[bool]
    writable: sa.ColumnElement[bool]
    settled: sa.ColumnElement[bool]
    held: sa.ColumnElement[bool]  # `answerable`, with the parent share-locked


def _conditions(kind: str, parent: bool) -> Conditions:
    """Return what makes the post valid: a ticket the author sees, a parent there the author sees,
    that parent as the post may answer it (which implies the one before), and a ticket the author
    may still write to (a requester's must not be closed: `CLOSED_TO_REQUESTER`); and what keeps it
    on this path: a ticket the post does not reopen (a requester's reply to one pending or resolved).

    A public reply may not answer an internal note: the requester would see the note's id as its
    `parent_id`. (A requester sees no note, so for them the parent they see is public already.)
    """
    ticket = [TICKETS.c.id == _param("ticket_id")]
    writable = settled = sa.true()
    if kind == REQUESTER:
        ticket.append(TICKETS.c.requester_id == _param("author_id"))
        writable = TICKETS.c.status != "closed"
        settled = TICKETS.c.status.not_in([sa.literal_column(f"'{status}'") for status in REOPENED_BY_REPLY])
    if not parent:
        return Conditions(ticket, sa.true(), sa.true(), writable, settled, sa.true())
    found = MESSAGES.alias("parent")
    live = [found.c.id == _param("parent_id"), found.c.ticket_id == TICKETS.c.id, found.c.deleted_at.is_(None)]
    if kind == REQUESTER:
        live.append(found.c.internal.is_(False))
    live_answerable = [*live, found.c.internal.is_(False)] if kind == STAFF_REPLY else live
    seen = sa.exists().where(*live)
    answerable = sa.exists().where(*live_answerable)
    # FOR SHARE, before the ticket's row: a deletion of the parent under way is waited for and seen (the
    # reply was stored under a message deleted meanwhile), in the order an edit or deletion takes them.
    held = sa.select(found.c.id).where(*live_answerable).with_for_update(read=True).exists()
    return Conditions(ticket, seen, answerable, writable, settled, held)


@cache
def _check(kind: str, parent: bool) -> TenantStatement:
    """A row if the author sees the ticket, saying whether the parent is there, whether the post may answer
    it, and whether the author may still write to the ticket."""
    found = _conditions(kind, parent)
    return TenantStatement(sa.select(found.seen, found.answerable, found.writable).select_from(TICKETS)
                           .where(*found.ticket))


@cache
def _statement(kind: str, parent: bool, claimed: bool) -> TenantStatement:
    """Build the statement once per shape, on first use: by then every outbox handler and recorder has registered."""
    found = _conditions(kind, parent)
    where = [*found.ticket, found.held, found.writable, found.settled]
    if claimed:
        # The ticket's row is locked first, so the seq in the stored response is the one the UPDATE takes.
        target = (sa.select(TICKETS.c.id, (TICKETS.c.last_message_seq + 1).label("seq")).where(*where)
                  .with_for_update(of=TICKETS).cte("target"))
        claim = claim_in_sql(target, Spliced.sql(target.c.seq)).cte("claimed")
        where = [TICKETS.c.id == _param("ticket_id"), sa.exists(sa.select(claim.c.key))]
    bumped = (TICKETS.update().where(*where).values(**bumped_by(kind, _param("author_id")))
              .returning(TICKETS.c.id, TICKETS.c.last_message_seq, TICKETS.c.status).cte("bumped"))
    posted = insert(Message).from_select(
        ["id", "ticket_id", "seq", "parent_id", "author_id", "internal", "body", "body_html", "created_at"],
        sa.select(_param("id"), bumped.c.id, bumped.c.last_message_seq, _param("parent_id"), _param("author_id"),
                  _param("internal"), _param("body"), _param("body_html"), _param("created_at")),
        include_defaults=False).returning(MESSAGES.c.seq).cte("posted")
    data = sa.func.jsonb_set(sa.bindparam("event_data", type_=JSONB), sa.literal_column("'{message,seq}'"),
                             sa.func.to_jsonb(posted.c.seq))
    events = recorded_in_sql(TOPIC, posted, sa.bindparam("event_payload", type_=JSONB), data,
                             internal=_param("internal"))
    return TenantStatement(sa.select(posted.c.seq, bumped.c.status).add_cte(*events))
