"""Ticket lists: the contract's filters, whitelisted sorts and keyset cursors, with or without `q`.

Every sort ends in a unique column, so walking pages while tickets are being created never repeats
or skips a ticket that existed when the walk began. A ticket whose sort key changes during a walk
(its `updated_at`, priority or status; never its number or `created_at`) moves in the order, and
may be met twice or not at all, as with any keyset paging.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased
from sqlalchemy.sql import util as sql_util

from app.auth.actor import Actor
from app.errors import Unavailable
from app.pagination import Narrowing, SortKey, after, decode_cursor, encode_cursor, invalid_cursor, order_by, page
from app.tenant_shares import TenantShare
from app.tickets import rare_tags, search
from app.tickets.models import PRIORITIES, STATUSES, Ticket
from app.tickets.schemas import RELEVANCE
from app.tickets.services import visibility
from tenants import current_tenant

DEFAULT_SORT = "-created_at"
# A search may hold a connection for its whole statement timeout (`SEARCH_STATEMENT_TIMEOUT_MS`).
SEARCHES = TenantShare("searches", "SEARCH_CONCURRENCY_PER_TENANT")
# A plain (non-search) page is read as rows, not Ticket objects: 50 rows skip the ORM's identity
# map and attribute instrumentation (about a millisecond), and carry the same names that
# `dump_ticket` and the cursor read.
LISTED_COLUMNS = tuple(c for c in Ticket.__table__.c if c.key != "search_vector")
_KEYS: dict[str, list[tuple[Any, str]]] = {
    "created_at": [(Ticket.created_at, "datetime"), (Ticket.id, "uuid")],
    "updated_at": [(Ticket.updated_at, "datetime"), (Ticket.id, "uuid")],
    "number": [(Ticket.number, "int")],
    "priority": [(Ticket.priority_rank, "int"), (Ticket.created_at, "datetime"), (Ticket.id, "uuid")],
    "status": [(Ticket.status_rank, "int"), (Ticket.created_at, "datetime"), (Ticket.id, "uuid")],
}
STATUS_RANKS = {status: rank for rank, status in enumerate(STATUSES)}
PRIORITY_RANKS = {priority: rank for rank, priority in enumerate(PRIORITIES)}  # as `priority_rank` stores them
# Search plans, as recorded in cursors: rank the candidates, sort the candidates, walk an index.
RANK, SORT_SET, WALK = "r", "s", "w"


@dataclass
class TicketPage:
    items: list[Any]  # Ticket objects, or rows with the same attribute names
    next_cursor: str | None
    order: str


def date_order(sort: str | None) -> str:
    """Return the order of a listing asked for `sort`: relevance ranks only matches of a search."""
    return DEFAULT_SORT if sort in (None, RELEVANCE) else sort


@cache
def sort_keys(sort: str) -> tuple[SortKey, ...]:
    """Return the keyset columns of a whitelisted sort such as `-priority` (the same keys each time)."""
    descending = sort.startswith("-")
    return tuple(SortKey(column, descending, kind) for column, kind in _KEYS[sort.lstrip("-")])


# The contract's filters, each a condition on bind parameters named as the query argument, so the
# same declaration serves a statement built per request (`filters`, values bound in) and one
# prebuilt per shape of query and compiled once per tenant (`app.tickets.reads`, values passed).
FILTERS: dict[str, sa.ColumnElement[bool]] = {
    # On the status's rank (a stored column): one index, on (rank, created_at, id), serves both
    # this filter and the sort by status. Values are ranks (`filter_shape` maps them).
    "status": Ticket.status_rank == sa.any_(sa.bindparam("status", type_=ARRAY(sa.SmallInteger))),
    # On the priority's rank too: the sort by priority walks (rank, created_at, id), and a filter on
    # the text column could only drop rows from that walk (800 ms for `priority=urgent&sort=priority`
    # at a million tickets), where one on the rank bounds it.
    "priority": Ticket.priority_rank == sa.any_(sa.bindparam("priority", type_=ARRAY(sa.SmallInteger))),
    "assignee_id": Ticket.assignee_id == sa.bindparam("assignee_id"),
    "team_id": Ticket.team_id == sa.bindparam("team_id"),
    "requester_id": Ticket.requester_id == sa.bindparam("requester_id"),
    "tag": rare_tags.TAGGED,
    "category": Ticket.category == sa.bindparam("category"),
    "created_after": Ticket.created_at >= sa.bindparam("created_after"),
    "created_before": Ticket.created_at < sa.bindparam("created_before"),
}
# Orders that follow creation: a walk by number or activity meets `created_after`'s tickets last
# going up, and `created_before`'s going down (see `pagination.in_order`).
_FOLLOW_CREATION = {"number", "updated_at"}
CREATION_RANGE = ("created_after", "created_before")
CONDITIONS: dict[str, sa.ColumnElement[bool]] = {
    "own": Ticket.requester_id == sa.bindparam("actor_id"),  # what a requester may see
    **FILTERS,
}


def filter_shape(actor: Actor, args: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Return the names of the `CONDITIONS` that `actor` and `args` call for, and their parameters."""
    names, values = [], {}
    if not actor.is_staff:
        names.append("own")
        values["actor_id"] = actor.user_id
    for name in FILTERS:
        if args.get(name):
            names.append(name)
            values[name] = args[name]
    if "status" in values:
        values["status"] = sorted({STATUS_RANKS[s] for s in values["status"]})
    if "priority" in values:
        values["priority"] = sorted({PRIORITY_RANKS[p] for p in values["priority"]})
    return tuple(names), values


def narrowing(order: str, names: Sequence[str],
              condition: Callable[[str], sa.ColumnElement[bool]]) -> Narrowing | None:
    """Return the creation range among the filters `names` for a page in `order` to count first
    (`pagination.in_order`), when a walk in that order would meet it last; `condition` gives a
    filter's condition by name."""
    if order.lstrip("-") not in _FOLLOW_CREATION:
        return None
    met_last = "created_before" if order.startswith("-") else "created_after"
    if met_last not in names:
        return None
    within = [condition(name) for name in CREATION_RANGE if name in names]
    return Narrowing(within, ~condition(met_last) if len(within) == 1 else None)


def filters(actor: Actor, args: dict[str, Any]) -> list[sa.ColumnElement[bool]]:
    """Return the conditions for the contract's filters, limited to what `actor` may see."""
    names, values = filter_shape(actor, args)
    return [CONDITIONS[name].params(values) for name in names]


def list_tickets(session, actor: Actor, args: dict[str, Any], timeout_ms: int,
                 scope: Sequence[sa.ColumnElement[bool]] = (), search_sort: str = DEFAULT_SORT) -> TicketPage:
    """Return one page of the tickets matching `args` (within `scope`, a queue's conditions), and its order.

    `sort` defaults to `DEFAULT_SORT`, or with `q` to `search_sort` (the pages' search boxes rank
    by relevance, as people expect of one; the API's default is the contract's).
    """
    conditions = [*filters(actor, args), *scope]
    sort, limit, cursor = args.get("sort"), args["limit"], args.get("cursor")
    tag = args.get("tag")
    # Staff only: the count covers the whole tenant, and a requester's plan must depend on their own tickets alone.
    rare_tag = tag if tag and actor.is_staff and rare_tags.is_rare(tag, lambda params: session.execute(
        rare_tags.TAGGED_UP_TO, params).scalar_one()) else None
    if not args.get("q"):
        order = date_order(sort)
        keys, stmt, read_keys = sort_keys(order), sa.select(*LISTED_COLUMNS).where(*conditions), None
        if rare_tag:  # the tag's index already bounds the rows read
            tagged, within, read_keys = _within_tag(rare_tag, LISTED_COLUMNS, conditions, keys)
            stmt, counted = sa.select(*tagged.c).where(*within), None
        else:
            counted = narrowing(order, [name for name in CREATION_RANGE if args.get(name)],
                                lambda name: FILTERS[name].params({name: args[name]}))
        items, next_cursor = page(session, stmt, keys, limit, cursor, read_keys=read_keys, narrowing=counted)
        return TicketPage(items, next_cursor, order)
    sort = sort or search_sort
    text = search.searchable(session, args["q"])
    if text is None:
        return TicketPage([], None, sort)
    with SEARCHES.hold(current_tenant().id):
        session.execute(sa.text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
        try:
            return _search(session, actor, conditions, text, sort, limit, cursor, rare_tag)
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != "57014":
                raise
            session.rollback()
            raise Unavailable("The search took too long; add words or filters to narrow it.") from exc



def _search(session, actor: Actor, conditions: list, text: str, sort: str, limit: int, cursor: str | None,
            rare_tag: str | None) -> TicketPage:
    """Page through the matches of query `text`: by relevance if `sort` asks and they are at most `RANK_UP_TO`,
    else in `sort`'s order (newest first for relevance); within a `rare_tag`, from its few tickets."""
    query = search.tsquery(text)
    plan, inner = _split_cursor(cursor)
    if plan == RANK and sort != RELEVANCE:
        raise invalid_cursor()  # a page by relevance, asked for in another order
    order = date_order(sort)
    visible = None if actor.is_staff else visibility(actor)  # in every subquery: a requester reads only theirs
    counted = sort == RELEVANCE or (actor.is_staff and rare_tag is None)  # see `search`'s plans
    if plan is None and counted and search.few_matches(session, text, query, actor.is_staff, visible):
        plan = RANK if sort == RELEVANCE else SORT_SET
    if rare_tag is not None and plan != RANK:
        plan = plan or SORT_SET  # the same pages as either date plan gives: a cursor of one serves the other
        keys = sort_keys(order)
        tagged, within, read_keys = _within_tag(rare_tag, Ticket.__table__.c, conditions, keys)
        tickets = aliased(Ticket, tagged)
        stmt = sa.select(tickets).where(*within, search.matches(query, actor.is_staff, tickets))
        items, next_inner = page(session, stmt, keys, limit, inner, plan, read_keys=read_keys)
        return TicketPage(items, _join_cursor(plan, next_inner), order)
    if plan is None:
        probed = _probe_recent(session, actor, conditions, query, sort_keys(order), limit)
        if probed is not None:
            return TicketPage(*probed, order)
        plan = SORT_SET
    if plan == RANK:
        items, next_inner = _ranked_page(session, actor, conditions, query, limit, inner, visible)
        return TicketPage(items, _join_cursor(plan, next_inner), RELEVANCE)
    if plan == SORT_SET:
        conditions = [*conditions, Ticket.id.in_(search.matching_ids(query, actor.is_staff, visible))]
    else:
        conditions = [*conditions, search.matches(query, actor.is_staff)]
    items, next_inner = page(session, sa.select(Ticket).where(*conditions), sort_keys(order), limit, inner, plan)
    return TicketPage(items, _join_cursor(plan, next_inner), order)


def _probe_recent(session, actor: Actor, conditions: list, query: sa.ColumnElement, keys: Sequence[SortKey],
                  limit: int) -> tuple[list[Ticket], str | None] | None:
    """Return the first page if it lies within the first `WALK_WINDOW` tickets in order, else None."""
    window = sa.select(*Ticket.__table__.c).where(*conditions).order_by(*order_by(keys)) \
        .limit(search.WALK_WINDOW).subquery("recent")
    recent = aliased(Ticket, window)
    recent_keys = [SortKey(getattr(recent, k.column.key), k.descending, k.kind) for k in keys]
    rows = list(session.execute(
        sa.select(recent).where(search.matches(query, actor.is_staff, recent))
        .order_by(*order_by(recent_keys)).limit(limit + 1)
    ).scalars())
    if len(rows) <= limit:
        return None
    rows = rows[:limit]
    return rows, _join_cursor(WALK, encode_cursor([getattr(rows[-1], k.column.key) for k in keys], keys, WALK))


def _within_tag(tag: str, columns: Sequence[sa.ColumnElement], conditions: list,
                keys: Sequence[SortKey]) -> tuple[sa.CTE, list[sa.ColumnElement[bool]], list[SortKey]]:
    """Return the tickets carrying a rare `tag` (`columns` of them, read from its index as a CTE), and
    `conditions` and sort `keys` as they read that CTE."""
    tagged = rare_tags.tagged_tickets(columns, tag)
    adapt = sql_util.ClauseAdapter(tagged).traverse
    return tagged, [adapt(c) for c in conditions], [SortKey(tagged.c[k.column.key], k.descending, k.kind) for k in keys]


def _ranked_page(session, actor: Actor, conditions: list, query: sa.ColumnElement, limit: int,
                 cursor: str | None, visible: sa.ColumnElement[bool] | None) -> tuple[list[Ticket], str | None]:
    found = search.candidates(query, actor.is_staff, visible)
    keys = [SortKey(found.c.rank, True, "int"), SortKey(Ticket.id, False, "uuid")]
    stmt = sa.select(Ticket, found.c.rank).join(found, found.c.ticket_id == Ticket.id).where(*conditions)
    if cursor:
        stmt = stmt.where(after(keys, decode_cursor(cursor, keys, RANK)))
    rows = session.execute(stmt.order_by(*order_by(keys)).limit(limit + 1)).all()
    if len(rows) <= limit:
        return [r[0] for r in rows], None
    rows = rows[:limit]
    return [r[0] for r in rows], encode_cursor([rows[-1][1], rows[-1][0].id], keys, RANK)


def _split_cursor(cursor: str | None) -> tuple[str | None, str | None]:
    if not cursor:
        return None, None
    plan, dot, inner = cursor.partition(".")
    if not dot or plan not in (RANK, SORT_SET, WALK) or not inner:
        raise invalid_cursor()
    return plan, inner


def _join_cursor(plan: str, inner: str | None) -> str | None:
    return f"{plan}.{inner}" if inner else None
