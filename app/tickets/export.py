"""Export every matching ticket as CSV, a JSON array or NDJSON, in constant memory.

Postgres formats the rows itself and streams them with `COPY (SELECT ...) TO STDOUT`, read in
chunks from a connection of our own, so the web process holds one chunk at a time however many
tickets there are. The SELECT is built with the same filters as the list and compiled with the
tenant's schema rendered in (`COPY` takes no server-side parameters, so psycopg binds them on
the client, quoted). JSON rows come out of `COPY ... CSV` with a quote and delimiter byte that
JSON never contains raw, so each line is one untouched JSON object.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from app.auth.actor import Actor
from app.tickets import search
from app.tickets.listing import filters
from app.tickets.models import Ticket

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json", "ndjson": "application/x-ndjson"}
TIMESTAMPS = ("created_at", "updated_at", "closed_at", "resolved_at", "first_response_at")


def _iso(column: sa.ColumnElement) -> sa.ColumnElement:
    return sa.func.to_char(sa.func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')


def export_select(actor: Actor, args: dict[str, Any], fmt: str) -> sa.Select:
    """Return the select of every ticket matching `args`, as text columns, in number order."""
    tags = sa.func.array_to_string(Ticket.tags, ";") if fmt == "csv" else sa.cast(Ticket.tags, ARRAY(sa.Text))
    columns = [Ticket.id, Ticket.number, Ticket.title, Ticket.description, Ticket.priority, Ticket.status,
               Ticket.category, tags.label("tags"), Ticket.requester_id, Ticket.assignee_id, Ticket.team_id,
               Ticket.resolution, *(_iso(getattr(Ticket, t)).label(t) for t in TIMESTAMPS)]
    conditions = filters(actor, args)
    if args.get("q"):
        text = search.to_tsquery_text(args["q"])
        conditions.append(search.matches(search.tsquery(text), actor.is_staff) if text else sa.false())
    return sa.select(*columns).where(*conditions).order_by(Ticket.number)


def copy_statement(engine: sa.Engine, stmt: sa.Select, schema: str, fmt: str) -> tuple[str, dict[str, Any]]:
    """Return the `COPY ... TO STDOUT` SQL for `stmt` in the tenant's schema, with its parameters."""
    compiled = stmt.compile(dialect=engine.dialect, schema_translate_map={"tenant": schema},
                            render_schema_translate=True, compile_kwargs={"render_postcompile": True})
    sql = compiled.string
    if fmt == "csv":
        return f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)", compiled.params
    rows = f"SELECT row_to_json(export_row) FROM ({sql}) AS export_row"
    return f"COPY ({rows}) TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')", compiled.params


def stream(engine: sa.Engine, sql: str, params: dict[str, Any], fmt: str) -> Iterator[bytes]:
    """Yield the export in chunks; the connection goes back to the pool when the stream ends."""
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor, cursor.copy(sql, params) as copy:
            chunks = (bytes(chunk) for chunk in copy)
            yield from (_json_array(chunks) if fmt == "json" else chunks)
        raw.rollback()
    finally:
        raw.close()


def _json_array(lines: Iterator[bytes]) -> Iterator[bytes]:
    """Join NDJSON chunks into one JSON array, chunk by chunk."""
    yield b"["
    first, rest = True, b""
    for chunk in lines:
        *complete, rest = (rest + chunk).split(b"\n")
        if complete:
            yield (b"" if first else b",\n") + b",\n".join(complete)
            first = False
    if rest:
        yield (b"" if first else b",\n") + rest
    yield b"]\n"
