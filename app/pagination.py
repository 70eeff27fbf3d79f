"""Keyset (cursor) pagination: stable under concurrent inserts, constant cost per page.

A cursor is the sort key of the last row returned, signed with the app's secret (itsdangerous)
for one tenant and one ordering. A cursor that was forged, altered, or made for another list,
sort or tenant is refused (422, naming `cursor`) before its values are read, and the values are then
checked against the types the ordering expects, so nothing a client sends reaches SQL untyped.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache
from typing import Any

import orjson
import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadData, Signer, URLSafeSerializer
from itsdangerous.encoding import base64_encode, want_bytes
from itsdangerous.signer import HMACAlgorithm
from marshmallow import Schema, fields, validate

from app.errors import Invalid
from app.schemas import QueryNumber, Whole
from tenants import current_tenant

MAX_LIMIT = 200


CURSOR_PATTERN = r"^[A-Za-z0-9_.-]*$"
# The longest a cursor this API gives can be: a team's name of 200 four-byte characters sorts its
# list, and comes to about 1,150 characters signed (2 KiB keeps a request line under 4 KiB).
MAX_CURSOR = 2048


def cursor_field() -> fields.String:
    """The `cursor` of a list: only a `next_cursor` this API returned for the same list is valid."""
    return fields.String(validate=[
        validate.Length(max=MAX_CURSOR), Whole(CURSOR_PATTERN, error="Not a valid cursor.")], metadata={
        "format": "cursor", "description": "The `next_cursor` of the previous page of this same list. Opaque and "
                                           "signed: any other value answers 422."})


class PageArgs(Schema):
    limit = QueryNumber(load_default=50, validate=validate.Range(min=1, max=MAX_LIMIT),
                        metadata={"description": "Items per page."})
    cursor = cursor_field()


@dataclass(frozen=True)
class SortKey:
    column: sa.ColumnElement
    descending: bool = False
    kind: str = "str"  # how to restore the value from a cursor: str, int, datetime, uuid

    @cached_property
    def name(self) -> str:
        """Name the key (table, column, direction, kind) for a cursor's signature; read on every page."""
        table = self.column.table.name if hasattr(self.column, "table") else ""
        return f"{table}.{self.column.key}{'-' if self.descending else '+'}{self.kind}"


def _signer(keys: Sequence[SortKey], purpose: str) -> URLSafeSerializer:
    """Return the serializer of cursors for one tenant, one ordering and one purpose."""
    return _serializer(current_app.secret_key, current_tenant().id, ",".join(k.name for k in keys), purpose)


class _CursorSigner(Signer):
    """itsdangerous' Signer with its key derived once, not on every signature: a serializer keeps one
    signer for its salt (one tenant, ordering and purpose), and a page signs one cursor."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._key = super().derive_key()

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        if secret_key is None or want_bytes(secret_key) == self.secret_keys[-1]:
            return self._key
        return super().derive_key(secret_key)


class _CursorSerializer(URLSafeSerializer):
    """Sign cursors as URLSafeSerializer does, in a third of the time, and load any it signed before.

    - The payload is compact JSON written by orjson and not tried with zlib first: a cursor is a
      few dozen bytes, which compression hardly ever shortens.
    - The HMAC is OpenSSL's, named by its digest (itsdangerous' default passes a function, which
      `hmac` can only run in Python), with a key derived once per signer (`_CursorSigner`).
    The signature is the same either way; orjson leaves non-ASCII text unescaped, which JSON reads alike.
    """

    signer = _CursorSigner

    def __init__(self, secret_key: str | bytes | list[str], salt: str) -> None:
        super().__init__(secret_key, salt=salt, signer_kwargs={"algorithm": HMACAlgorithm("sha1")})
        self._own_signer = super().make_signer(salt)

    def make_signer(self, salt: str | bytes | None = None) -> Signer:
        return self._own_signer if salt is None or salt == self.salt else super().make_signer(salt)

    def dump_payload(self, obj: Any) -> bytes:
        return base64_encode(orjson.dumps(obj))


@lru_cache(maxsize=4096)
def _serializer(secret: str | bytes, tenant_id: str, ordering: str, purpose: str) -> URLSafeSerializer:
    return _CursorSerializer(secret, salt=f"cursor:{tenant_id}:{ordering}:{purpose}")


def encode_cursor(values: Sequence[Any], keys: Sequence[SortKey], purpose: str = "") -> str:
    """Return the signed cursor for the sort `values` of the last row of a page."""
    plain = [v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, uuid.UUID) else v
             for v in values]
    return _signer(keys, purpose).dumps(plain)


def decode_cursor(cursor: str, keys: Sequence[SortKey], purpose: str = "") -> list[Any]:
    """Return the sort values in a cursor, or raise Invalid if it is not one of ours for this list."""
    try:
        raw = _signer(keys, purpose).loads(cursor)
        if not isinstance(raw, list) or len(raw) != len(keys):
            raise ValueError
        return [None if v is None else _RESTORE[k.kind](v) for k, v in zip(keys, raw, strict=True)]
    except (BadData, ValueError, TypeError):
        raise invalid_cursor() from None


def invalid_cursor() -> Invalid:
    """The refusal of a cursor that is not one this API gave out for this list (forged, altered, foreign)."""
    return Invalid.field("cursor", "Not a valid cursor.", "The cursor is not valid.")


def _typed(kind: type, restore=None):
    def convert(value: Any) -> Any:
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}")
        return restore(value) if restore else value

    return convert


_RESTORE = {"str": _typed(str), "int": _typed(int), "datetime": _typed(str, datetime.fromisoformat),
            "uuid": _typed(str, uuid.UUID)}


def after(keys: Sequence[SortKey], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """Return the condition for rows strictly after `values` in the order of `keys`.

    Keys that all run one way compare as one row, `(a, b) > (x, y)`: Postgres starts an index scan
    there, where the same condition spelt `a > x OR (a = x AND b > y)` only filters the rows a
    scan from the start reads (a page half a million tickets deep took 180 ms, 0.15 ms as a row).
    Both mean the same, nulls included. Mixed directions (relevance, then id) keep the long form.
    """
    if len({k.descending for k in keys}) == 1:
        row = sa.tuple_(*(k.column for k in keys))
        bound = sa.tuple_(*(v if isinstance(v, sa.ColumnElement) else sa.literal(v, k.column.type)
                            for k, v in zip(keys, values, strict=True)))
        return row < bound if keys[0].descending else row > bound
    clauses = []
    for i, key in enumerate(keys):
        equal = [keys[j].column == values[j] for j in range(i)]
        beyond = key.column < values[i] if key.descending else key.column > values[i]
        clauses.append(sa.and_(*equal, beyond))
    return sa.or_(*clauses)


def order_by(keys: Sequence[SortKey]) -> list[sa.ColumnElement]:
    return [k.column.desc() if k.descending else k.column.asc() for k in keys]


# How many rows `in_order` counts on each side: a walk passing no more is left as it is, and a
# range of no more is read and sorted.
SMALL_SET = 50_000


@dataclass(frozen=True)
class Narrowing:
    """Conditions of a page's statement on a column its order follows (see `in_order`)."""

    within: Sequence[sa.ColumnElement[bool]]  # the range the conditions keep
    # The rows a walk in the page's order goes through before the range, if that is all it passes: none
    # for a range bounded on both sides, as a walk that runs out of the range goes on to the end.
    passed: sa.ColumnElement[bool] | None


def in_order(stmt: sa.Select, keys: Sequence[SortKey], limit: Any, narrowing: Narrowing | None = None) -> sa.Select:
    """Return `stmt`'s first `limit` rows in the order of `keys`.

    Postgres walks the index of `keys` and drops the rows the conditions refuse, expecting those it
    keeps to come early. When the order follows another column the conditions bound (`narrowing`),
    the rows kept may all come late: tickets created in the last month lie at the far end of a walk
    by number (460 ms at a million tickets). So Postgres first counts, on that column's own index,
    the rows the walk would pass before the range, up to `SMALL_SET` (a fraction of a millisecond
    when they are few, and then the walk stays); past that, it counts the range, and if it holds
    no more than `SMALL_SET`, reads it and sorts it (50 ms where the walk took 460). A range bounded
    on both sides is counted at once: a walk that runs out of it (a last page, or other filters
    keeping few) reads on to the end of the index. Both plans are in the statement, and only the
    one the counts pick runs; the second count only when the first calls for it. Each key's column
    must be one of `stmt`'s, by name.
    """
    walked = stmt.order_by(*order_by(keys)).limit(limit)
    if narrowing is None:
        return walked
    small = _counted("within", narrowing.within) <= sa.literal_column(str(SMALL_SET))
    if narrowing.passed is not None:
        small = sa.and_(_counted("passed", [narrowing.passed]) > sa.literal_column(str(SMALL_SET)), small)
    # An OFFSET keeps Postgres from walking the order's index for these rows.
    rows = stmt.offset(sa.literal_column("0")).subquery("rows")
    sorted_ = sa.select(*rows.c).where(small).order_by(*order_by(_on(rows, keys))).limit(limit)
    both = sa.union_all(sorted_, walked.where(~small)).subquery("page")
    return sa.select(*both.c).order_by(*order_by(_on(both, keys))).limit(limit)


def _counted(name: str, conditions: Sequence[sa.ColumnElement[bool]]) -> sa.ScalarSelect:
    """Return how many rows `conditions` keep, counted up to one more than `SMALL_SET`, as a value
    Postgres works out once, when first needed. Constants are written in the SQL, not bound, so a
    prepared statement's generic plan knows them."""
    rows = sa.select(sa.literal_column("1")).where(*conditions).limit(sa.literal_column(str(SMALL_SET + 1)))
    counted = sa.select(sa.func.count().label("rows")).select_from(rows.subquery(name)).cte(f"counted_{name}")
    return sa.select(counted.c.rows).scalar_subquery()


def _on(selectable: sa.Subquery, keys: Sequence[SortKey]) -> list[SortKey]:
    """Return `keys` on the columns of the same names in `selectable`."""
    return [SortKey(selectable.c[k.column.key], k.descending, k.kind) for k in keys]


def page(session, stmt: sa.Select, keys: Sequence[SortKey], limit: int, cursor: str | None,
         purpose: str = "", read_keys: Sequence[SortKey] | None = None,
         narrowing: Narrowing | None = None) -> tuple[list[Any], str | None]:
    """Run `stmt` for one page; return its rows and the cursor of the next page (or None).

    `read_keys` are `keys` as `stmt` reads them when it selects from elsewhere than their table (a
    CTE of its rows): the page compares and orders by those, and its cursor is signed as `keys`'.
    `narrowing`: see `in_order`.
    """
    read = read_keys or keys
    if cursor:
        stmt = stmt.where(after(read, decode_cursor(cursor, keys, purpose)))
    result = session.execute(in_order(stmt, read, limit + 1, narrowing))
    # One entity: its objects; several columns: plain rows (cheaper, for read-only pages).
    rows = list(result.scalars() if len(stmt.column_descriptions) == 1 else result)
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    values = [getattr(last, k.column.key) for k in keys]
    return rows, encode_cursor(values, keys, purpose)


def page_body(items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    return {"items": items, "next_cursor": next_cursor}


def page_schema(item_schema: type[Schema]) -> type[Schema]:
    """Return a `{"items": [...], "next_cursor"}` schema for an item schema."""
    return type(
        f"{item_schema.__name__.removesuffix('Schema')}PageSchema",
        (Schema,),
        {"items": fields.List(fields.Nested(item_schema)), "next_cursor": fields.String(allow_none=True)},
    )
