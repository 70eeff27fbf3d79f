"""Request and response schemas for tickets."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from marshmallow import Schema, ValidationError, fields, validate
from webargs.fields import DelimitedList

from app.openapi import SHOWN_LINE
from app.pagination import PageArgs
from app.schemas import UtcDateTime, Uuid, fast_dumper, shown_line, tag_list
from app.tickets.models import PRIORITIES, STATUSES, Ticket

MAX_DESCRIPTION = 64 * 1024
MAX_TITLE = 200
SORT_FIELDS = ("created_at", "updated_at", "priority", "number", "status")
SORTS = tuple(s for f in SORT_FIELDS for s in (f, f"-{f}"))
RELEVANCE = "relevance"  # a sort for searches: the best matches of `q` first
PATCHABLE_STATUSES = ("new", "open", "pending", "resolved")
EXPORT_FORMATS = ("csv", "json", "ndjson")


def at_most_64_kib(value: str) -> None:
    """Refuse a description over 64 KiB of UTF-8, however few characters that is."""
    if len(value.encode("utf-8")) > MAX_DESCRIPTION:
        raise ValidationError(f"Longer than {MAX_DESCRIPTION} bytes (64 KiB).")


def category_text(**kwargs: object) -> fields.String:
    """A ticket's category, and a rule's condition on one (which no other text could meet)."""
    return fields.String(metadata={"pattern": SHOWN_LINE},
                         validate=[validate.Length(min=1, max=100), shown_line("category")], **kwargs)


def _patch_status(value: str) -> None:
    if value == "closed":
        raise ValidationError("Close a ticket with POST /api/v1/tickets/{id}/close.")


def _seconds_between(start: datetime | None, end: datetime | None) -> int | None:
    """Whole seconds from `start` to `end`, cut toward zero, exactly as `duration_sql` counts them.

    Times in one zone subtract by the wall clock in Python, so across a change to or from daylight
    saving (a connection whose time zone has one) they were an hour off; and a float of many
    seconds rounded its last one. Counted in microseconds between the instants, neither happens.
    """
    if start is None or end is None:
        return None
    # By the wall clock, less what the offsets moved (no conversion to UTC, which can leave year 9999);
    # a time without a zone has no offset, and is refused (TypeError) as Postgres never gives one.
    elapsed = (end.replace(tzinfo=None) - start.replace(tzinfo=None)) - (end.utcoffset() - start.utcoffset())
    micros = (elapsed.days * 86_400 + elapsed.seconds) * 1_000_000 + elapsed.microseconds
    return micros // 1_000_000 if micros >= 0 else -(-micros // 1_000_000)


def duration_field(ends_at: str, description: str) -> fields.Function:
    """A whole number of seconds from a ticket's creation to its `ends_at` timestamp (null until then).

    `ends_at` is kept in the field's metadata, so the export computes the same value in SQL.
    """
    return fields.Function(lambda t: _seconds_between(t.created_at, getattr(t, ends_at)), dump_only=True,
                           allow_none=True,
                           metadata={"type": "integer", "description": description, "ends_at": ends_at})


def duration_sql(field: fields.Function) -> sa.ColumnElement:
    """Return what a `duration_field` dumps, computed by Postgres: whole seconds, cut toward zero as
    `int()` cuts them (so a clock a little behind gives 0, not -1), or NULL until `ends_at` is set."""
    ends_at = Ticket.__table__.c[field.metadata["ends_at"]]
    return sa.cast(sa.func.trunc(sa.extract("epoch", ends_at - Ticket.__table__.c.created_at)), sa.BigInteger)


class TicketSchema(Schema):
    id = Uuid(dump_only=True)
    number = fields.Integer(dump_only=True)
    title = fields.String(required=True, validate=[validate.Length(min=1, max=MAX_TITLE), shown_line("title")],
                          metadata={"pattern": SHOWN_LINE})
    description = fields.String(load_default="", validate=at_most_64_kib)
    priority = fields.String(load_default="normal", validate=validate.OneOf(PRIORITIES))
    status = fields.String(dump_only=True, validate=validate.OneOf(STATUSES))
    category = category_text(load_default=None, allow_none=True)
    tags = tag_list(load_default=list)
    requester_id = Uuid(load_default=None, allow_none=True,
                        metadata={"description": "Staff only: open the ticket on someone's behalf."})
    assignee_id = Uuid(dump_only=True, allow_none=True)
    team_id = Uuid(dump_only=True, allow_none=True)
    resolution = fields.String(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    closed_at = fields.DateTime(dump_only=True, allow_none=True)
    resolved_at = fields.DateTime(dump_only=True, allow_none=True)
    first_response_at = fields.DateTime(dump_only=True, allow_none=True)
    first_response_seconds = duration_field("first_response_at",
                                            "Seconds from creation to the first staff reply (SLA).")
    resolution_seconds = duration_field("resolved_at", "Seconds from creation to resolution (SLA).")
    version = fields.Integer(dump_only=True, metadata={
        "description": "Bumped by every change to the ticket, new public messages included (an internal note "
        "changes neither this nor `updated_at`); the ETag."})


# A page of 50 tickets took ~5 ms through marshmallow, more than the query; this does the same
# from the same field declarations (a test keeps the two in step).
dump_ticket = fast_dumper(TicketSchema())


class TicketUpdateSchema(Schema):
    title = fields.String(validate=[validate.Length(min=1, max=MAX_TITLE), shown_line("title")],
                          metadata={"pattern": SHOWN_LINE})
    description = fields.String(validate=at_most_64_kib)
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    category = category_text(allow_none=True)
    tags = tag_list()
    status = fields.String(validate=[_patch_status, validate.OneOf(PATCHABLE_STATUSES)],
                           metadata={"description": "new, open (needs an assignee), pending or resolved "
                                                    "(close with /close)."})
    assignee_id = Uuid(allow_none=True, metadata={"description": "An active agent or admin."})
    team_id = Uuid(allow_none=True)


class CloseSchema(Schema):
    resolution = fields.String(load_default=None, allow_none=True, validate=at_most_64_kib)


# `?status=` names no status: refused like an empty `?tag=`, not read as no filter at all.
def _some_of(choices: tuple[str, ...]) -> DelimitedList:
    """One or more of `choices`, comma separated: at most as many as there are (more would repeat one)."""
    return DelimitedList(fields.String(validate=validate.OneOf(choices)), validate=validate.Length(
        min=1, max=len(choices), error=f"Name one to {len(choices)}."), metadata={
        "description": "One or more, comma separated."})


class TicketFilterArgs(Schema):
    status = _some_of(STATUSES)
    priority = _some_of(PRIORITIES)
    assignee_id = Uuid()
    team_id = Uuid()
    requester_id = Uuid()
    tag = fields.String(validate=validate.Length(min=1, max=64))
    category = fields.String(validate=validate.Length(min=1, max=100), metadata={"description": "Exact category."})
    created_after = UtcDateTime(metadata={"description": "Inclusive."})
    created_before = UtcDateTime(metadata={"description": "Exclusive."})
    q = fields.String(validate=validate.Length(min=1, max=200), metadata={
        "description": 'Full-text search over title, description and messages: words, "a phrase", '
                       "prefix*, -excluded, OR. An address, host name, version or file name "
                       "(`ann@example.com`, `10.0.0.5`, `2.4.1`, `report.pdf`) is found as one term."})


class TicketListArgs(TicketFilterArgs, PageArgs):
    sort = fields.String(validate=validate.OneOf((*SORTS, RELEVANCE)), metadata={
        "description": "A field, `-` first for descending (default `-created_at`), or `relevance`: the matches "
                       "of `q` ranked best first when there are at most 2,000 of them, else newest first (the "
                       "response's `order` says which)."})


class ExportArgs(TicketFilterArgs):
    format = fields.String(load_default="csv", validate=validate.OneOf(EXPORT_FORMATS),
                           metadata={"description": "csv, json (one array) or ndjson (one ticket a line)."})


class TicketPageSchema(Schema):
    items = fields.List(fields.Nested(TicketSchema))
    next_cursor = fields.String(allow_none=True)
    order = fields.String(metadata={
        "description": "How items are ordered: `relevance`, or the sort field (`-created_at` ...)."})
