"""Conversation operations shared by the REST API and the ticket stream: post, list, edit, delete."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from app import audit
from app.auth.actor import Actor
from app.conversation.models import Message
from app.conversation.schemas import MessageSchema
from app.errors import Forbidden, Invalid, NotFound
from app.extensions import db
from app.markdown import render
from app.media.services import hide_attachments_of, link_attachments
from app.outbox import emit
from app.pagination import SortKey, decode_cursor, encode_cursor
from app.realtime import publish_after_commit
from app.tickets.models import Ticket
from app.tickets.services import announce, check_open_for, hold_open_for, reopen_for_reply, ticket_for, visibility

_dump = MessageSchema().dump
SEQ_KEY = [SortKey(Message.seq, kind="int")]


def message_json(message: Message) -> dict[str, Any]:
    """Return the contract's JSON of a message (the same for REST and socket events)."""
    return _dump(message)


def visible_to(actor: Actor, internal: bool) -> bool:
    """Tell whether `actor` may see a message; internal notes are for staff only."""
    return actor.is_staff or not internal


def check_may_post(actor: Actor, ticket_id: uuid.UUID, internal: bool) -> None:
    """Refuse an internal note from anyone but staff: 404 first for a ticket they may not see, as any
    request about it answers, whatever its body asks."""
    if internal and not actor.is_staff:
        ticket_for(actor, ticket_id)
        raise Forbidden("Only agents and admins may post internal notes.")


def no_such_parent() -> Invalid:
    """Return the refusal of a parent that is not a live message of the ticket the author may see."""
    return Invalid.field("parent_id", "No such message on this ticket.", "The parent message is not on this ticket.")


def note_parent() -> Invalid:
    """Return the refusal of a public reply to an internal note: a requester would see the note's id as its parent."""
    return Invalid.field("parent_id", "A reply to an internal note must be an internal note too.",
                         "A public message cannot reply to an internal note; post the reply as an internal note.")


def first_response_at(author: Any) -> sa.ColumnElement:
    """Return a ticket's first response time once `author`, staff, replies: stamped unless their own ticket or set."""
    tickets = Ticket.__table__
    return sa.case((tickets.c.requester_id.is_distinct_from(author),
                    sa.func.coalesce(tickets.c.first_response_at, sa.func.now())),
                   else_=tickets.c.first_response_at)


# Who posts decides what a message changes on its ticket, and (`writes`) which tickets they see.
# OPENING is the first message of a ticket staff open for someone, with its files: not an answer.
REQUESTER, STAFF_NOTE, STAFF_REPLY, OPENING = "requester", "staff note", "staff reply", "opening"


def bumped_by(kind: str, author: Any) -> dict[str, Any]:
    """Return what a message of `kind` by `author` sets on its ticket's row.

    Each takes the next seq. A message the requester sees is a change to their ticket: a new
    version (the ETag) and `updated_at`, and a staff reply may be the first response. An internal
    note changes neither, or a requester's cached ticket, conditional update and updated order
    would move for activity they may not see.
    """
    tickets = Ticket.__table__
    values: dict[str, Any] = {"last_message_seq": tickets.c.last_message_seq + 1}
    if kind == STAFF_NOTE:
        values["updated_at"] = tickets.c.updated_at  # kept, not the column's onupdate
        return values
    values["version"] = tickets.c.version + 1
    if kind == STAFF_REPLY:
        values["first_response_at"] = first_response_at(author)
    return values


def next_seq(actor: Actor, ticket_id: uuid.UUID, internal: bool, kind: str | None = None) -> int:
    """Take the next message `seq` of a ticket `actor` can see and may write to, or raise NotFound or Conflict.

    One `UPDATE ... RETURNING` both checks visibility and numbers the message; the row stays
    locked until commit, so concurrent posts on a ticket serialize and seqs have no gaps. The
    rest of what it sets is `bumped_by`'s.
    """
    kind = kind or (STAFF_NOTE if internal else STAFF_REPLY if actor.is_staff else REQUESTER)
    values = bumped_by(kind, actor.user_id)
    bumped = db.session.execute(
        sa.update(Ticket).where(Ticket.id == ticket_id, visibility(actor)).values(**values)
        .returning(Ticket.last_message_seq, Ticket.status),
        execution_options={"synchronize_session": False},
    ).one_or_none()
    if bumped is None:
        raise NotFound("No such ticket.")
    check_open_for(actor, bumped.status)  # the caller's rollback undoes the bump
    return bumped.last_message_seq


def post_message(actor: Actor, ticket_id: uuid.UUID, body: str, parent_id: uuid.UUID | None = None,
                 internal: bool = False, attachment_ids: list[uuid.UUID] | None = None,
                 opening: bool = False) -> Message:
    """Add a message to a ticket the actor can see; it is broadcast once the caller commits.

    `attachment_ids` are the author's own uploads on this ticket that no message carries yet. A
    reply to an internal note must be one too. An `opening` message carries the files of a ticket
    as it is opened (by staff for someone: not their first response). Posts without attachments
    have a one-statement twin, `writes.post_message`.
    """
    check_may_post(actor, ticket_id, internal)
    if parent_id is not None:
        parent = held_parent(parent_id)
        if (parent is None or parent.ticket_id != ticket_id or parent.deleted_at is not None
                or not visible_to(actor, parent.internal)):
            raise no_such_parent()
        if parent.internal and not internal:
            raise note_parent()
    seq = next_seq(actor, ticket_id, internal, OPENING if opening and not internal else None)
    if not actor.is_staff:
        reopen_answered(actor, ticket_id)
    message = Message(id=uuid.uuid4(), ticket_id=ticket_id, seq=seq, parent_id=parent_id,
                      author_id=actor.user_id, internal=internal, body=body, body_html=render(body),
                      created_at=datetime.now(UTC), edited_at=None, deleted_at=None)
    # A plain INSERT of the columns the object holds: it is complete already, so the unit of work
    # (and the reload after commit) would only add latency to every chat message.
    db.session.execute(sa.insert(Message).values(
        {c.key: getattr(message, c.key) for c in Message.__table__.c if c.computed is None}))
    # The message object never joins the session; its attachments are set as loaded, not as a change.
    set_committed_value(message, "attachments",
                        link_attachments(actor, ticket_id, message.id, internal, attachment_ids or []))
    body_json = message_json(message)
    publish_after_commit(ticket_id, {"type": "message.created", "message": body_json})
    emit("message.created", {"ticket_id": str(ticket_id), "message_id": str(message.id)}, {"message": body_json})
    return message


def held_parent(parent_id: uuid.UUID) -> Message | None:
    """Read a reply's parent share-locked, before anything locks the ticket's row (as the one-statement
    twin does): a deletion of the parent under way is waited for and seen (the reply was stored under
    it), in the order an edit or deletion takes the two (`message_for`)."""
    return db.session.get(Message, parent_id, with_for_update={"read": True}, populate_existing=True)


def reopen_answered(actor: Actor, ticket_id: uuid.UUID) -> None:
    """Reopen the ticket its requester has just answered if it was pending or resolved (in the caller's
    transaction), and announce it once that commits."""
    from app.tickets.schemas import dump_ticket

    ticket = reopen_for_reply(actor, ticket_id)
    if ticket is not None:
        announce(ticket, dump_ticket(ticket))


def recently_changed(ticket_id: uuid.UUID, up_to_seq: int, within: timedelta, with_internal: bool,
                     limit: int) -> tuple[list[tuple[bool, dict[str, Any]]], datetime | None]:
    """Return the live events of the ticket's messages up to `up_to_seq` edited or deleted within `within`,
    the newest `limit`, oldest change first, each with whether it is an internal note's (for a
    socket that was away), and when the newest change left out was made (None if none was).
    Internal notes' only `with_internal`.

    A catch-up by seq brings back new messages only: an edit or a deletion of one the client
    already holds, made while it had no socket (or while its process had no pub/sub), was
    announced to nobody there.
    """
    changed = sa.func.coalesce(Message.deleted_at, Message.edited_at)
    stmt = sa.select(Message).where(Message.ticket_id == ticket_id, Message.seq <= up_to_seq,
                                    changed >= sa.func.now() - within)
    if not with_internal:
        stmt = stmt.where(Message.internal.is_(False))
    rows = db.session.execute(stmt.order_by(changed.desc(), Message.seq.desc()).limit(limit + 1)).scalars().all()
    events = [(m.internal, {"type": "message.deleted", "message": deleted_json(m)} if m.deleted_at is not None
               else {"type": "message.updated", "message": message_json(m)}) for m in reversed(rows[:limit])]
    untold = rows[limit].deleted_at or rows[limit].edited_at if len(rows) > limit else None
    return events, untold


def deleted_json(message: Message) -> dict[str, Any]:
    """Return what a `message.deleted` event says of the message."""
    return {"id": str(message.id), "seq": message.seq, "internal": message.internal}


def messages_after(ticket_id: uuid.UUID, after_seq: int, limit: int,
                   actor: Actor | None = None) -> list[Message]:
    """Return up to `limit` messages after `after_seq` in seq order: those `actor` may see, or all.

    With no actor, deleted messages and internal notes are included, so a stream can advance its
    seq past them without sending them.
    """
    stmt = (sa.select(Message).where(Message.ticket_id == ticket_id, Message.seq > after_seq)
            .order_by(Message.seq).limit(limit))
    if actor is not None:
        stmt = stmt.where(Message.deleted_at.is_(None))
        if not actor.is_staff:
            stmt = stmt.where(Message.internal.is_(False))
    return list(db.session.execute(stmt).scalars())


def latest_messages(actor: Actor, ticket_id: uuid.UUID, limit: int) -> tuple[list[Message], bool]:
    """Return the newest `limit` messages `actor` may see on a ticket, in seq order, and whether older ones exist.

    The caller has checked that `actor` may see the ticket.
    """
    stmt = (sa.select(Message).where(Message.ticket_id == ticket_id, Message.deleted_at.is_(None))
            .order_by(Message.seq.desc()).limit(limit + 1))
    if not actor.is_staff:
        stmt = stmt.where(Message.internal.is_(False))
    rows = list(db.session.execute(stmt).scalars())
    return rows[:limit][::-1], len(rows) > limit


def participant_ids(actor: Actor, ticket_id: uuid.UUID) -> set[uuid.UUID]:
    """Return who takes part in a ticket as `actor` may see it: requester, assignee, authors of visible messages."""
    ticket = ticket_for(actor, ticket_id)
    stmt = sa.select(Message.author_id).where(Message.ticket_id == ticket_id, Message.author_id.is_not(None)).distinct()
    if not actor.is_staff:
        stmt = stmt.where(Message.internal.is_(False), Message.deleted_at.is_(None))
    found = set(db.session.execute(stmt).scalars())
    return found | {i for i in (ticket.requester_id, ticket.assignee_id) if i is not None}


def list_messages(actor: Actor, ticket_id: uuid.UUID, after_seq: int, limit: int,
                  cursor: str | None) -> tuple[list[Message], str | None]:
    """Return one page of the messages the actor may see, in seq order, and the next cursor."""
    ticket_for(actor, ticket_id)
    purpose = f"messages:{ticket_id}"  # a cursor of another ticket's messages is refused, not read as a seq
    if cursor:
        after_seq = max(after_seq, decode_cursor(cursor, SEQ_KEY, purpose)[0])
    rows = messages_after(ticket_id, after_seq, limit + 1, actor=actor)
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor([rows[-1].seq], SEQ_KEY, purpose)


def last_seq_seen(actor: Actor, ticket: Ticket) -> int:
    """Return the seq of the ticket's last message `actor` may see: for a requester, its last public one.

    The ticket's own count takes internal notes too; told it, a requester learned how many notes
    staff had written, and, asking again, when.
    """
    if visible_to(actor, True):
        return ticket.last_message_seq
    return db.session.execute(sa.select(sa.func.coalesce(sa.func.max(Message.seq), 0)).where(
        Message.ticket_id == ticket.id, Message.internal.is_(False))).scalar_one()


def message_for(actor: Actor, ticket_id: uuid.UUID, message_id: uuid.UUID, lock: bool = False) -> Message:
    """Return a live message of a ticket the actor can see, or raise NotFound."""
    ticket_for(actor, ticket_id)
    stmt = sa.select(Message).where(Message.id == message_id, Message.ticket_id == ticket_id,
                                    Message.deleted_at.is_(None))
    if lock:
        # FOR NO KEY UPDATE, as an edit or deletion changes no key. The message is locked before the ticket
        # (`hold_open_for`), as a reply locks its parent (FOR SHARE) before the ticket: the reply waits for
        # the change and sees it. The reply's row then takes its parent FOR KEY SHARE, which waits for nothing.
        stmt = stmt.with_for_update(key_share=True)
    message = db.session.execute(stmt).scalar_one_or_none()
    if message is None or not visible_to(actor, message.internal):
        raise NotFound("No such message.")
    return message


def _may_change(actor: Actor, message: Message) -> None:
    if message.author_id != actor.user_id and actor.role != "admin":
        raise Forbidden("Only the author or an admin may change a message.")


def edit_message(actor: Actor, ticket_id: uuid.UUID, message_id: uuid.UUID, body: str) -> Message:
    """Change a message's body; the previous body is kept in the audit log. On their closed ticket a
    requester may not, as they may not write there (Conflict)."""
    message = message_for(actor, ticket_id, message_id, lock=True)
    _may_change(actor, message)
    hold_open_for(actor, ticket_id)
    before = message.body
    message.body = body
    message.body_html = render(body)
    message.edited_at = datetime.now(UTC)
    audit.record("message", message.id, "edited", before={"body": before}, after={"body": body})
    db.session.flush()
    publish_after_commit(ticket_id, {"type": "message.updated", "message": message_json(message)})
    return message


def delete_message(actor: Actor, ticket_id: uuid.UUID, message_id: uuid.UUID) -> None:
    """Delete a message (its seq stays taken); the body is kept in the audit log. On their closed
    ticket a requester may not, as they may not edit there (Conflict)."""
    message = message_for(actor, ticket_id, message_id, lock=True)
    _may_change(actor, message)
    hold_open_for(actor, ticket_id)
    audit.record("message", message.id, "deleted", before={"body": message.body, "internal": message.internal})
    message.deleted_at = datetime.now(UTC)
    message.body = ""
    message.body_html = ""
    hide_attachments_of(message.id)
    publish_after_commit(ticket_id, {"type": "message.deleted", "message": deleted_json(message)})
