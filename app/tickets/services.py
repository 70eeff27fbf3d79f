"""Ticket operations shared by the API, the UI, the sockets and the jobs.

Every change writes its audit entry and its outbox events in the caller's transaction, and queues
a live `ticket.updated` event that is published only once that transaction commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from app import audit
from app.auth.actor import Actor
from app.errors import Conflict, Forbidden, Invalid, NotFound, Stale
from app.extensions import db
from app.outbox import emit
from app.people.models import Team
from app.people.services import get_user
from app.realtime import publish_after_commit
from app.tickets.models import Ticket
from app.tickets.schemas import TicketSchema

# The fields a create takes, read once (a `TicketSchema()` costs about 90 µs to build); both create
# paths take these and no other.
CREATE_FIELDS = TicketSchema().load_fields
SNAPSHOT_FIELDS = ("title", "description", "priority", "status", "category", "tags", "assignee_id", "team_id",
                   "resolution")
EDITABLE_FIELDS = ("title", "description", "priority", "category", "tags", "status", "assignee_id", "team_id")
REQUESTER_FIELDS = frozenset({"title", "description", "category", "tags"})
# Status changes a PATCH may make (`new` only while unassigned); close and reopen have their own endpoints.
TRANSITIONS = {
    "new": {"new", "open", "pending", "resolved"},
    "open": {"open", "pending", "resolved"},
    "pending": {"open", "pending", "resolved"},
    "resolved": {"open", "pending", "resolved"},
    "closed": set(),
}
MAX_NUMBER = 2**63 - 1


def snapshot(ticket: Ticket) -> dict[str, Any]:
    """Return the fields of a ticket that the audit log compares."""
    return {f: getattr(ticket, f) for f in SNAPSHOT_FIELDS}


def etag(ticket: Ticket) -> str:
    """Return the entity tag of a ticket's current version (unquoted)."""
    return etag_of_version(ticket.version)


def etag_of_version(version: int) -> str:
    return f"v{version}"


def requester_for(actor: Actor, requester_id: uuid.UUID | None) -> uuid.UUID:
    """Return whom a new ticket is for: the actor, or a user staff name; a requester naming another is Forbidden."""
    if requester_id is None or requester_id == actor.user_id:
        return actor.user_id
    if not actor.is_staff:
        raise Forbidden("Requesters may open tickets for themselves only.")
    if get_user(requester_id) is None:
        raise Invalid("No such requester.", {"requester_id": ["No such user."]})
    return requester_id


def new_ticket_values(actor: Actor, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Return a new ticket's columns from what a create took (`TicketSchema`'s load fields): whom it is
    for (`requester_for`), its tags once each and sorted, and no description as an empty one."""
    unknown = fields.keys() - CREATE_FIELDS.keys()
    if unknown:  # `status`, `number`, `assignee_id` ... are the ticket's own, never a create's to set
        raise TypeError(f"not fields a create takes: {sorted(unknown)}")
    values = dict(fields)
    values["requester_id"] = requester_for(actor, values.get("requester_id"))
    values["description"] = values.get("description") or ""
    values["tags"] = sorted(set(values.get("tags") or []))
    return values


def create_ticket(actor: Actor, **fields: Any) -> Ticket:
    """Open a ticket from a create's `fields`, for their requester (default: the actor); assignment follows
    in the background."""
    ticket = Ticket(id=uuid.uuid4(), status="new", **new_ticket_values(actor, fields))
    db.session.add(ticket)
    audit.record("ticket", ticket.id, "created", after=snapshot(ticket))
    emit("ticket.created", {"ticket_id": str(ticket.id)}, event_data(ticket))
    db.session.flush()  # the INSERT takes the next number from the sequence and returns it
    return ticket


def event_data(ticket: Ticket, **extra: Any) -> Callable[[], dict[str, Any]]:
    """Return what a public ticket event carries: the ticket as it is when the transaction commits."""
    from app.tickets.schemas import dump_ticket

    return lambda: {"ticket": dump_ticket(ticket), **extra}


def visible_tickets(actor: Actor) -> sa.Select:
    """Return a select of the tickets `actor` may see: requesters see only their own."""
    return sa.select(Ticket).where(visibility(actor))


def visibility(actor: Actor) -> sa.ColumnElement[bool]:
    """Return the condition limiting tickets to those `actor` may see."""
    return sa.true() if actor.is_staff else Ticket.requester_id == actor.user_id


def ticket_for(actor: Actor, ticket_id: uuid.UUID, lock: bool = False) -> Ticket:
    """Return a ticket `actor` may see, or raise NotFound (never Forbidden: existence is not disclosed)."""
    return _one(visible_tickets(actor).where(Ticket.id == ticket_id), lock)


# A requester's message on a closed ticket would reach nobody: no queue shows a closed ticket. Their
# page offers to reopen it instead, and so does this refusal; staff may still add to it.
CLOSED_TO_REQUESTER = "This ticket is closed; reopen it to write again."


def check_open_for(actor: Actor, status: str) -> None:
    """Refuse a requester's message or file on a closed ticket (Conflict); staff may still add to it."""
    if status == "closed" and not actor.is_staff:
        raise Conflict(CLOSED_TO_REQUESTER)


def hold_open_for(actor: Actor, ticket_id: uuid.UUID) -> None:
    """Refuse a requester's change on their closed ticket (Conflict), and keep it open until the caller commits.

    The status is read `FOR SHARE`: a close being committed is waited for and seen, and a close that
    comes later waits for this change, so a requester's edit, deletion or file never lands on a
    ticket closed under it. Staff may change a closed ticket's conversation, so nothing is locked
    for them. The caller has already found the ticket visible to `actor`.
    """
    if actor.is_staff:
        return
    status = db.session.execute(
        sa.select(Ticket.status).where(Ticket.id == ticket_id).with_for_update(read=True)).scalar_one_or_none()
    if status is None:
        raise NotFound("No such ticket.")
    check_open_for(actor, status)


def ticket_by_number(actor: Actor, number: int) -> Ticket:
    """Return the ticket with this number if `actor` may see it, or raise NotFound."""
    if not 0 < number <= MAX_NUMBER:
        raise NotFound("No such ticket.")
    return _one(visible_tickets(actor).where(Ticket.number == number), lock=False)


def _one(stmt: sa.Select, lock: bool) -> Ticket:
    if lock:  # and read the row again: one loaded earlier in the session may be older than the lock
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    ticket = db.session.execute(stmt).scalar_one_or_none()
    if ticket is None:
        raise NotFound("No such ticket.")
    return ticket


def check_version(ticket: Ticket, expected: Iterable[str] | None) -> None:
    """Raise Stale unless the ticket is still at one of the versions the client last saw."""
    if expected is not None and etag(ticket) not in set(expected):
        raise _changed(ticket)


def check_seen(ticket: Ticket, seen: dict[str, str]) -> None:
    """Raise Stale unless each field still has the value the editor saw, as a page shows it ("" for none).

    A page's panel sends what it showed for the fields it changes: a change to other fields, or a
    new message (which moves the version), is no reason to refuse it.
    """
    if any(shown(getattr(ticket, f)) != value for f, value in seen.items()):
        raise _changed(ticket)


def shown(value: Any) -> str:
    """Return a field's value as a page's form holds it, the form comparing what it sends the same way.

    "" for none; a list of tags as one comma-separated line (a tag with a comma in it reads as two
    there, and edge spaces go); text on one line (a browser drops a text box's line breaks).
    """
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(sorted({tag.strip() for item in value for tag in item.split(",") if tag.strip()}))
    return str(value).replace("\r", "").replace("\n", "")


def _changed(ticket: Ticket) -> Stale:
    return Stale("The ticket has changed since you read it; get it again and reapply your change.", etag(ticket))


def update_ticket(actor: Actor, ticket_id: uuid.UUID, changes: dict[str, Any],
                  expected: Iterable[str] | None = None, seen: dict[str, str] | None = None,
                  leaving: bool = False) -> Ticket:
    """Apply a PATCH: check role, version (or the values seen) and transition, then record what changed.

    A ticket the actor may not see is 404 before any of that, whatever the body asks. `leaving`:
    the change takes the ticket from an assignee who is leaving (`people.services._release_tickets`).
    """
    ticket = ticket_for(actor, ticket_id, lock=True)
    if not actor.is_staff and (refused := sorted(set(changes) - REQUESTER_FIELDS)):
        raise Forbidden(f"Requesters may not change {', '.join(refused)}.")
    check_version(ticket, expected)
    check_seen(ticket, seen or {})
    before = snapshot(ticket)
    changes = {k: v for k, v in changes.items() if k in EDITABLE_FIELDS}
    if "tags" in changes:
        changes["tags"] = sorted(set(changes["tags"] or []))
    if not {k: v for k, v in changes.items() if before.get(k) != v}:
        return ticket
    if ticket.status == "closed":
        raise Conflict("The ticket is closed; reopen it before changing it.")
    _check_people(changes)
    left = changes.get("status") in ("open", "pending") and "assignee_id" not in changes and _assignee_left(ticket)
    if left:  # solved by someone who has left since: released, as their unsolved tickets were
        if changes["status"] == "open":
            raise Conflict("The ticket's assignee is no longer an agent of this organization; set assignee_id "
                           "in the same change, or reopen the ticket to put it back in the queue.")
        changes["assignee_id"] = None
    status = _next_status(ticket, changes)
    for field, value in changes.items():
        if field != "status":
            setattr(ticket, field, value)
    _set_status(ticket, status)
    after = snapshot(ticket)
    changed = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    audit.record("ticket", ticket.id, "updated", before={k: before[k] for k in changed},
                 after={k: after[k] for k in changed})
    if (leaving or left) and "assignee_id" in changed:
        _record_release(ticket, actor, before["assignee_id"])
    elif "assignee_id" in changed or "team_id" in changed:
        _record_manual_assignment(ticket, actor, before["assignee_id"])
    emit("ticket.updated", {"ticket_id": str(ticket.id), "fields": sorted(changed)},
         event_data(ticket, changes=sorted(changed)))
    db.session.flush()
    return ticket


def _check_people(changes: dict[str, Any]) -> None:
    """Refuse an assignee or team that does not exist, or an assignee who is not staff: 422 naming the fields.

    The request is well formed, but what it names cannot take the ticket. (Not 404, which would
    read as "no such ticket"; not 409, since no state of the ticket would make it acceptable.)
    """
    errors: dict[str, list[str]] = {}
    if changes.get("assignee_id") is not None:
        # Share-locked, after the ticket (as `_assignee_left` does): someone leaving meanwhile is seen gone,
        # or their release waits for this change and then takes the ticket back.
        user = get_user(changes["assignee_id"], lock=True)
        if user is None:
            errors["assignee_id"] = ["No such user."]
        elif not user.is_staff:
            errors["assignee_id"] = ["Must be an active agent or admin of this organization."]
    if changes.get("team_id") is not None and db.session.get(Team, changes["team_id"]) is None:
        errors["team_id"] = ["No such team."]
    if errors:
        raise Invalid("The assignee or team is not valid.", errors)


def _next_status(ticket: Ticket, changes: dict[str, Any]) -> str:
    """Return the status after `changes`, or raise Conflict saying why the move makes no sense.

    The queue of unassigned work is `new` with no assignee, so assigning a `new` ticket opens it
    and taking the assignee off an `open` one puts it back in the queue. For the same reason `open`
    needs an assignee: an open ticket with nobody on it is in no queue, and auto-assignment (which
    takes only `new` ones) would never pick it up.
    """
    assignee = changes.get("assignee_id", ticket.assignee_id)
    status = changes.get("status")
    if status is None:
        if ticket.status == "new" and assignee is not None:
            return "open"
        if ticket.status == "open" and assignee is None and "assignee_id" in changes:
            return "new"
        return ticket.status
    if status == "new":
        if assignee is not None:
            raise Conflict("An assigned ticket is open, not new; remove the assignee to put it back in the queue.")
        if ticket.status not in ("new", "open"):
            raise Conflict(f"A ticket that is {ticket.status} cannot go back to new.")
        return status
    if status not in TRANSITIONS[ticket.status]:
        raise Conflict(f"A ticket cannot move from {ticket.status} to {status}.")
    if status == "open" and assignee is None:
        raise Conflict("An open ticket needs an assignee; set assignee_id in the same change, or leave the "
                       "status for assignment to open it.")
    return status


def _set_status(ticket: Ticket, status: str) -> None:
    if status == ticket.status:
        return
    now = datetime.now(UTC)
    if status == "resolved":
        ticket.resolved_at = now
    elif ticket.status == "resolved":
        ticket.resolved_at = None
    ticket.status = status


def close_ticket(actor: Actor, ticket_id: uuid.UUID, resolution: str | None = None,
                 expected: Iterable[str] | None = None) -> Ticket:
    """Close a ticket (Conflict if it is closed already); its agent's capacity frees up."""
    ticket = ticket_for(actor, ticket_id, lock=True)
    check_version(ticket, expected)
    if ticket.status == "closed":
        raise Conflict("The ticket is already closed.")
    before = snapshot(ticket)
    now = datetime.now(UTC)
    ticket.status = "closed"
    ticket.closed_at = now
    ticket.resolved_at = ticket.resolved_at or now
    if resolution is not None:
        ticket.resolution = resolution
    audit.record("ticket", ticket.id, "closed", before=before, after=snapshot(ticket))
    emit("ticket.closed", {"ticket_id": str(ticket.id)}, event_data(ticket))
    db.session.flush()
    return ticket


def reopen_ticket(actor: Actor, ticket_id: uuid.UUID, expected: Iterable[str] | None = None) -> Ticket:
    """Reopen a closed or resolved ticket: open if it has an assignee, else back in the queue as new."""
    ticket = ticket_for(actor, ticket_id, lock=True)
    check_version(ticket, expected)
    if ticket.status not in ("closed", "resolved"):
        raise Conflict(f"Only a closed or resolved ticket can be reopened; this one is {ticket.status}.")
    return _reopen(ticket, actor)


# A requester's reply means the ticket needs the team again: waiting on them (`pending`), or solved.
REOPENED_BY_REPLY = ("pending", "resolved")


def reopen_for_reply(actor: Actor, ticket_id: uuid.UUID) -> Ticket | None:
    """Reopen a pending or resolved ticket its requester has just answered, as help desks do; the caller
    commits and announces it. Return it if it changed, else None (a requester cannot write to a closed ticket)."""
    ticket = ticket_for(actor, ticket_id, lock=True)
    if ticket.status not in REOPENED_BY_REPLY:
        return None
    return _reopen(ticket, actor)


def _assignee_left(ticket: Ticket) -> bool:
    """Tell whether a solved ticket's assignee has since stopped being staff (deactivated, or made a requester).

    Someone who leaves is taken off their unsolved tickets only (`people.services._release_tickets`);
    solved ones keep them as the record, until the ticket is reopened. The caller holds the ticket;
    the person's row is share-locked after it, so a leaving under way finishes before this reads it.
    A release waits only for tickets unsolved as last committed, so it never waits for this one
    while holding the person, and its second read takes a ticket reopened before it committed.
    """
    if ticket.assignee_id is None or ticket.status not in ("resolved", "closed"):
        return False
    user = get_user(ticket.assignee_id, lock=True)
    return user is None or not user.is_staff


def _reopen(ticket: Ticket, actor: Actor) -> Ticket:
    before = snapshot(ticket)
    left = _assignee_left(ticket)
    if left:
        ticket.assignee_id = None
    ticket.status = "open" if ticket.assignee_id else "new"
    ticket.closed_at = None
    ticket.resolved_at = None
    ticket.resolution = None  # the answer did not solve it; the audit entry keeps what it said
    after = snapshot(ticket)
    audit.record("ticket", ticket.id, "reopened", before=before, after=after)
    if left:
        _record_release(ticket, actor, before["assignee_id"])
    changed = [name for name in ("status", "resolution", "assignee_id") if before[name] != after[name]]
    emit("ticket.updated", {"ticket_id": str(ticket.id), "fields": changed, "reopened": True},
         event_data(ticket, changes=changed))
    db.session.flush()
    return ticket


def clear_team(team_id: uuid.UUID) -> int:
    """Take a team being deleted off its tickets, each a change of its own: a new version (the ETag),
    an audit entry, a `ticket.updated` event (webhooks, the event feed) and a live update; return how many."""
    from app.tickets.schemas import dump_ticket

    cleared = db.session.scalars(
        sa.update(Ticket).where(Ticket.team_id == team_id).values(team_id=None, version=Ticket.version + 1)
        .returning(Ticket), execution_options={"synchronize_session": False, "populate_existing": True}).all()
    for ticket in cleared:
        audit.record("ticket", ticket.id, "updated", before={"team_id": team_id}, after={"team_id": None})
        emit("ticket.updated", {"ticket_id": str(ticket.id), "fields": ["team_id"]},
             event_data(ticket, changes=["team_id"]))
        announce(ticket, dump_ticket(ticket))
    return len(cleared)


def announce(ticket: Ticket, body: dict[str, Any]) -> None:
    """Queue the live `ticket.updated` event for everyone watching the ticket (sent after commit)."""
    publish_after_commit(ticket.id, {"type": "ticket.updated", "ticket": body})


def _record_manual_assignment(ticket: Ticket, actor: Actor, previous_assignee_id: uuid.UUID | None) -> None:
    """Hand the manual decision to the assignment area, which records it and emits `ticket.assigned`."""
    from app.assignment.services import record_manual_assignment

    record_manual_assignment(ticket, ticket.assignee_id, ticket.team_id, actor,
                             previous_assignee_id=previous_assignee_id)


def _record_release(ticket: Ticket, actor: Actor, previous_assignee_id: uuid.UUID) -> None:
    """Hand the release from an assignee who left to the assignment area, which says where the ticket waits."""
    from app.assignment.services import record_release

    record_release(ticket, previous_assignee_id, actor)
