"""The read path of the API's plain ticket pages and single tickets: one prebuilt statement, no ORM.

A ticket read through the ORM session and marshmallow spent more time in Python than in
Postgres. Here each read is one statement, built once per shape of query (which filters, which
sort, a cursor or not) from the same filter declarations and keyset helpers as every other list,
compiled once per tenant by `tenants.TenantStatement` and run on an autocommit connection (no
BEGIN or ROLLBACK round trips). Rows become the dicts `TicketSchema` declares (`row_dumper`),
ids read as the text Postgres sends and times left native for orjson to write. Searches (`q`)
keep the planner in `app.tickets.listing`.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from marshmallow import fields
from sqlalchemy.sql import util as sql_util

from app.auth.actor import Actor
from app.errors import NotFound
from app.pagination import after, decode_cursor, encode_cursor, in_order, order_by
from app.schemas import row_dumper
from app.tickets import rare_tags
from app.tickets.listing import CONDITIONS, LISTED_COLUMNS, TicketPage, date_order, filter_shape, narrowing, sort_keys
from app.tickets.models import Ticket
from app.tickets.schemas import TicketSchema, duration_sql
from app.tickets.services import MAX_NUMBER
from tenants import TenantStatement, autocommit_connection


def _read_columns() -> list[tuple[str | None, sa.ColumnElement]]:
    """Return what a read selects, each with the key of the ticket's column it reads (None: computed).

    A column per field of `TicketSchema`, in its order (what `dump_row` reads), a duration computed
    by Postgres; then the columns no field shows (the sort keys' ranks, which cursors carry).
    """
    read: list[tuple[str | None, sa.ColumnElement]] = []
    for name, field in _SCHEMA.dump_fields.items():
        if isinstance(field, fields.Function):
            if "ends_at" not in field.metadata:
                raise TypeError(f"{name}: a computed field a read serves needs its SQL here (only durations have it)")
            read.append((None, duration_sql(field).label(name)))
            continue
        column = Ticket.__table__.c[field.attribute or name]
        # Ids are read as the text Postgres writes them (what `str(uuid)` gives): they only pass on to JSON.
        read.append((column.key, (sa.cast(column, sa.Text) if isinstance(column.type, sa.Uuid) else column)
                     .label(name)))
    shown = {key for key, _ in read}
    return read + [(c.key, c) for c in LISTED_COLUMNS if c.key not in shown]


_SCHEMA = TicketSchema()
_KEYED = _read_columns()
_READ = [column for _, column in _KEYED]
_INDEX = {key: i for i, (key, _) in enumerate(_KEYED) if key}
NUMBER, VERSION = _INDEX["number"], _INDEX["version"]
dump_row = row_dumper(_SCHEMA, [column.key for column in _READ])


def columns_over(source: sa.FromClause) -> list[sa.ColumnElement]:
    """Return what a read selects (`dump_row`'s row), over `source`: a subquery or CTE of the ticket's columns."""
    adapt = sql_util.ClauseAdapter(source)
    return [adapt.traverse(column) for column in _READ]


def _one_by(column: sa.ColumnElement, own: bool) -> TenantStatement:
    stmt = sa.select(*_READ).where(column == sa.bindparam("key"))
    return TenantStatement(stmt.where(CONDITIONS["own"]) if own else stmt)


# (by, requester's own only) -> statement
_ONE = {(by, own): _one_by(column, own) for by, column in (("id", Ticket.id), ("number", Ticket.number))
        for own in (False, True)}
_PAGES: dict[tuple[tuple[str, ...], str, bool, bool], TenantStatement] = {}
MAX_SHAPES = 512  # shapes are few in practice; the bound keeps a crawler of every combination from growing it
_TAGGED_UP_TO = TenantStatement(rare_tags.TAGGED_UP_TO)


def ticket(actor: Actor, ticket_id: uuid.UUID) -> dict[str, Any]:
    """Return a ticket `actor` may see as its API body, or raise NotFound."""
    return _read_one(actor, "id", ticket_id)


def ticket_by_number(actor: Actor, number: int) -> dict[str, Any]:
    """Return the ticket with this number as its API body if `actor` may see it, or raise NotFound."""
    if not 0 < number <= MAX_NUMBER:
        raise NotFound("No such ticket.")
    return _read_one(actor, "number", number)


def _read_one(actor: Actor, by: str, key: Any) -> dict[str, Any]:
    own = not actor.is_staff
    with autocommit_connection() as conn:
        row = _ONE[by, own].one(conn, {"key": key, "actor_id": actor.user_id}, binary=True)
    if row is None:
        raise NotFound("No such ticket.")
    return dump_row(row)


def ticket_page(actor: Actor, args: dict[str, Any]) -> TicketPage:
    """Return one page of the tickets matching `args` (no `q`) as API bodies, and the next cursor."""
    names, values = filter_shape(actor, args)
    order = date_order(args.get("sort"))
    keys = sort_keys(order)
    cursor, limit = args.get("cursor"), args["limit"]
    if cursor:
        values.update((f"after_{i}", v) for i, v in enumerate(decode_cursor(cursor, keys)))
    values["limit"] = limit + 1
    with autocommit_connection() as conn:
        shape = (names, order, bool(cursor), "tag" in names and actor.is_staff and rare_tags.is_rare(
            values["tag"], lambda params: _TAGGED_UP_TO.one(conn, params)[0]))
        stmt = _PAGES.get(shape)
        if stmt is None:
            if len(_PAGES) >= MAX_SHAPES:
                _PAGES.clear()
            stmt = _PAGES.setdefault(shape, _page_statement(*shape))
        rows = stmt.all(conn, values, binary=True)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor([rows[-1][_INDEX[k.column.key]] for k in keys], keys)
    return TicketPage([dump_row(row) for row in rows], next_cursor, order)


def _page_statement(names: tuple[str, ...], order: str, cursor: bool, rare_tag: bool = False) -> TenantStatement:
    """Build a page's statement; with `rare_tag`, over the tickets of the tag, read first from its index."""
    keys = sort_keys(order)
    stmt = sa.select(*_READ).where(*(CONDITIONS[name] for name in names))
    if cursor:
        stmt = stmt.where(after(keys, [sa.bindparam(f"after_{i}", type_=k.column.type) for i, k in enumerate(keys)]))
    limit = sa.bindparam("limit", type_=sa.Integer)
    if rare_tag:  # the tag's index already bounds the rows read
        stmt = stmt.order_by(*order_by(keys)).limit(limit)
        return TenantStatement(sql_util.ClauseAdapter(rare_tags.tagged_tickets(LISTED_COLUMNS)).traverse(stmt))
    return TenantStatement(in_order(stmt, keys, limit, narrowing(order, names, CONDITIONS.__getitem__)))
