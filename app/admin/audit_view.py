"""The audit log as a person reads it: names for ids, tickets by number, and only what changed.

An entry keeps the ids and values as they were written (that is the record); the page names
what it can: people and teams by name, a ticket as its number and title with a link, and an
update lists the fields whose values differ (a full snapshot is often stored on both sides).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from app.audit.models import AuditEntry
from app.extensions import db
from app.people.models import Team
from app.people.services import users_by_id
from app.tickets.models import Ticket

PERSON_FIELDS = ("assignee_id", "requester_id", "user_id", "author_id", "created_by", "uploader_id", "actor_id")


@dataclass(frozen=True)
class Subject:
    """What an entry is about, as shown: a label, and where to see it (None if nowhere)."""

    label: str
    number: int | None = None  # a ticket's, for its link


@dataclass(frozen=True)
class Change:
    field: str
    before: str | None  # None: the field was not there before (created)
    after: str | None  # None: not there after (deleted)


@dataclass(frozen=True)
class Row:
    entry: AuditEntry
    subject: Subject
    changes: list[Change]


def rows_of(entries: list[AuditEntry]) -> list[Row]:
    """Return the entries as the audit page shows them, with the names they refer to, in three queries."""
    ids = {e.entity_id for e in entries}
    for e in entries:
        for side in (e.before or {}, e.after or {}):
            ids.update(_as_uuid(v) for k, v in side.items() if k.endswith("_id") or k == "created_by")
    ids.discard(None)
    people = {str(i): u.name for i, u in users_by_id(ids).items()}
    teams = {str(t.id): t.name for t in db.session.execute(sa.select(Team).where(Team.id.in_(ids))).scalars()} \
        if ids else {}
    tickets = {str(i): (n, t) for i, n, t in db.session.execute(
        sa.select(Ticket.id, Ticket.number, Ticket.title).where(Ticket.id.in_(ids)))} if ids else {}
    names = {**people, **teams}
    return [Row(e, _subject(e, names, tickets), _changes(e, people, teams, tickets)) for e in entries]


def _subject(entry: AuditEntry, names: dict[str, str], tickets: dict[str, tuple[int, str]]) -> Subject:
    key = str(entry.entity_id)
    if entry.entity == "ticket" and key in tickets:
        number, title = tickets[key]
        return Subject(f"ticket #{number} {title}", number)
    if key in names:
        return Subject(f"{entry.entity} {names[key]}")
    return Subject(f"{entry.entity} {key[:8]}")


def _changes(entry: AuditEntry, people: dict[str, str], teams: dict[str, str],
             tickets: dict[str, tuple[int, str]]) -> list[Change]:
    before, after = entry.before or {}, entry.after or {}
    found = []
    for field in dict.fromkeys([*before, *after]):
        if field in before and field in after and before[field] == after[field]:
            continue  # the same on both sides: not a change
        found.append(Change(field, _shown(field, before[field], people, teams, tickets) if field in before else None,
                            _shown(field, after[field], people, teams, tickets) if field in after else None))
    return found


def _shown(field: str, value: Any, people: dict[str, str], teams: dict[str, str],
           tickets: dict[str, tuple[int, str]]) -> str:
    if value is None:
        return "none"
    if isinstance(value, str) and (field in PERSON_FIELDS or field.endswith("_id")):
        if value in people:
            return people[value]
        if value in teams:
            return teams[value]
        if value in tickets:
            return f"#{tickets[value][0]}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _as_uuid(value: Any) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
