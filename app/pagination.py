"""Keyset (cursor) pagination: stable under concurrent inserts, constant cost per page.

A cursor is the sort key of the last row returned, opaque to clients (URL-safe base64 JSON).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from marshmallow import Schema, fields, validate

from app.errors import Invalid

MAX_LIMIT = 200


class PageArgs(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(load_default=None, validate=validate.Length(max=1000))


@dataclass(frozen=True)
class SortKey:
    column: sa.ColumnElement
    descending: bool = False
    kind: str = "str"  # how to restore the value from a cursor: str, int, datetime, uuid


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, uuid.UUID) else v
                      for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, keys: Sequence[SortKey]) -> list[Any]:
    """Return the sort values in a cursor, or raise Invalid if it is not one of ours."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(keys):
            raise ValueError
        restore = {"str": str, "int": int, "datetime": datetime.fromisoformat, "uuid": uuid.UUID}
        return [None if v is None else restore[k.kind](v) for k, v in zip(keys, raw, strict=True)]
    except (ValueError, TypeError, json.JSONDecodeError):
        raise Invalid.field("cursor", "Not a valid cursor.", "The cursor is not valid.") from None


def after(keys: Sequence[SortKey], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """Return the condition for rows strictly after `values` in the order of `keys`."""
    clauses = []
    for i, key in enumerate(keys):
        equal = [keys[j].column == values[j] for j in range(i)]
        beyond = key.column < values[i] if key.descending else key.column > values[i]
        clauses.append(sa.and_(*equal, beyond))
    return sa.or_(*clauses)


def order_by(keys: Sequence[SortKey]) -> list[sa.ColumnElement]:
    return [k.column.desc() if k.descending else k.column.asc() for k in keys]


def page(session, stmt: sa.Select, keys: Sequence[SortKey], limit: int,
         cursor: str | None) -> tuple[list[Any], str | None]:
    """Run `stmt` for one page; return its rows and the cursor of the next page (or None)."""
    if cursor:
        stmt = stmt.where(after(keys, decode_cursor(cursor, keys)))
    result = session.execute(stmt.order_by(*order_by(keys)).limit(limit + 1))
    # One entity: its objects; several columns: plain rows (cheaper, for read-only pages).
    rows = list(result.scalars() if len(stmt.column_descriptions) == 1 else result)
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    values = [getattr(last, k.column.key) for k in keys]
    return rows, encode_cursor(values)


def page_body(items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    return {"items": items, "next_cursor": next_cursor}


def page_schema(item_schema: type[Schema]) -> type[Schema]:
    """Return a `{"items": [...], "next_cursor"}` schema for an item schema."""
    return type(
        f"{item_schema.__name__.removesuffix('Schema')}PageSchema",
        (Schema,),
        {"items": fields.List(fields.Nested(item_schema)), "next_cursor": fields.String(allow_none=True)},
    )
