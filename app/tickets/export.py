"""Export every matching ticket as CSV, a JSON array or NDJSON, in constant memory.

Postgres formats the rows itself and streams them with `COPY (SELECT ...) TO STDOUT`, read in
chunks from a connection of our own, so the web process holds one chunk at a time however many
tickets there are. The SELECT is built with the same filters as the list and compiled with the
tenant's schema rendered in (`COPY` takes no server-side parameters, so psycopg binds them on
the client, quoted). JSON rows come out of `COPY ... CSV` with a quote and delimiter byte that
JSON never contains raw, so each line is one untouched JSON object.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import Response, current_app, has_request_context, request
from marshmallow import fields
from sqlalchemy.dialects.postgresql import ARRAY

from app.auth.actor import Actor
from app.errors import Unavailable
from app.extensions import db
from app.tickets import search
from app.tickets.listing import filters
from app.tickets.models import Ticket
from app.tickets.schemas import TicketSchema, duration_sql
from app.tickets.services import visibility
from tenants import compile_for_tenant, current_tenant, driver_errors_as_sqlalchemys, engine_for, keepalive_args

_engine_lock = threading.Lock()
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json", "ndjson": "application/x-ndjson"}


def _iso(column: sa.ColumnElement) -> sa.ColumnElement:
    return sa.func.to_char(sa.func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')


def inert_in_spreadsheets(text: sa.ColumnElement) -> sa.ColumnElement:
    """Prefix a cell that a spreadsheet would run as a formula with `'` (OWASP's CSV injection advice).

    A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula in Excel,
    LibreOffice and Sheets; the quote makes it text and shows nothing.
    """
    return sa.case((text.op("~")("^[=+@\t\r-]"), sa.literal("'") + text), else_=text)


def export_columns(fmt: str) -> list[sa.ColumnElement]:
    """Return a column per field of the API's ticket, in its order, computed by Postgres.

    Derived from `TicketSchema`, so a field added there is exported too: timestamps in UTC with a
    `Z`, durations from their `ends_at` metadata, and tags joined by `, ` in CSV (a tag holds no comma, so the
    cell splits back into its tags; a `;` may be in one). In CSV, text that
    people typed is neutralised for spreadsheets; JSON stays exact.
    """
    columns = []
    for name, field in TicketSchema().dump_fields.items():
        if isinstance(field, fields.Function):
            column = duration_sql(field)
        elif name == "tags":
            column = sa.func.array_to_string(Ticket.tags, ", ") if fmt == "csv" else sa.cast(Ticket.tags,
                                                                                            ARRAY(sa.Text))
        elif isinstance(field, fields.DateTime):
            column = _iso(getattr(Ticket, name))
        else:
            column = getattr(Ticket, name)
        if fmt == "csv" and (type(field) is fields.String or name == "tags"):  # free text, not ids or times
            column = inert_in_spreadsheets(column)
        columns.append(column.label(name))
    return columns


def export_select(actor: Actor, args: dict[str, Any], fmt: str) -> sa.Select:
    """Return the select of every ticket matching `args`, as text columns, in number order."""
    columns = export_columns(fmt)
    conditions = filters(actor, args)
    if args.get("q"):
        text = search.searchable(db.session, args["q"])
        # From the text indexes, not a check of every ticket's messages (which read them all); a
        # requester's matches only among their own tickets.
        visible = None if actor.is_staff else visibility(actor)
        conditions.append(Ticket.id.in_(search.matching_ids(search.tsquery(text), actor.is_staff, visible)) if text
                          else sa.false())
    return sa.select(*columns).where(*conditions).order_by(Ticket.number)


def copy_statement(stmt: sa.Select, fmt: str) -> tuple[str, dict[str, Any]]:
    """Return the `COPY ... TO STDOUT` SQL for `stmt` in the current tenant's schema, with its parameters."""
    sql, params = compile_for_tenant(stmt)
    if fmt == "csv":
        # Every cell quoted, so a separator inside one (`a;=1+1` where `;` separates) never splits it.
        return f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true, FORCE_QUOTE *)", params
    rows = f"SELECT row_to_json(export_row) FROM ({sql}) AS export_row"
    return f"COPY ({rows}) TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')", params


class ExportConnection:
    """One export's database connection and its slot: both given back once, by whichever ends it first."""

    def __init__(self, engine: sa.Engine, raw: Any, tenant_id: str, client: socket.socket | None,
                 send_timeout: float) -> None:
        self.engine, self.raw, self.tenant_id = engine, raw, tenant_id
        self.client, self.send_timeout = client, send_timeout
        self._closed = False

    def cursor(self) -> Any:
        return self.raw.cursor()

    def rollback(self) -> None:
        self.raw.rollback()

    def close(self) -> None:
        with _slots_lock:
            if self._closed:
                return
            self._closed = True
        _release(self.tenant_id)
        self.raw.close()


_slots_lock = threading.Lock()
_held: dict[str, int] = {}  # tenant id -> exports it is streaming in this process


def _release(tenant_id: str) -> None:
    with _slots_lock:
        _held[tenant_id] -= 1
        if not _held[tenant_id]:
            del _held[tenant_id]


def open_connection() -> ExportConnection:
    """Take a connection for one export from the exports' own pool; Unavailable when all are busy.

    An export holds its connection for as long as its client takes to read, so exports never
    draw on the pool that requests use: a few stalled downloads would otherwise leave every
    other request of the process, whatever its tenant, waiting for a connection. At most
    `EXPORT_CONCURRENCY` exports stream at once per process, and one organization's at most
    half of them, so its downloads never leave another's none.
    """
    tenant_id = current_tenant().id
    with _slots_lock:
        _check_share(tenant_id)
        _held[tenant_id] = _held.get(tenant_id, 0) + 1
    try:
        engine = _export_engine()
        raw = engine.raw_connection()
    except BaseException as exc:
        _release(tenant_id)
        if isinstance(exc, sa.exc.TimeoutError):
            raise _all_busy() from None
        raise
    client = request.environ.get("gunicorn.socket") if has_request_context() else None
    return ExportConnection(engine, raw, tenant_id, client, current_app.config["EXPORT_SEND_TIMEOUT"])


def download(actor: Actor, args: dict[str, Any], fmt: str) -> Response:
    """Answer an export (the API's and the dashboard's alike): every ticket `args` match, streamed as `fmt`.

    A HEAD answers the headers alone, taking no slot and beginning no COPY, but is refused as its
    GET would be when the slots are full, before any query is made.
    """
    if request.method == "HEAD":
        check_free()
    sql, params = copy_statement(export_select(actor, args, fmt), fmt)
    db.session.rollback()  # the export reads on its own connection; give this one back now
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {"Content-Disposition": f'attachment; filename="tickets-{current_tenant().slug}-{stamp}.{fmt}"',
               "X-Accel-Buffering": "no"}
    if request.method == "HEAD":
        return Response(iter(()), content_type=CONTENT_TYPES[fmt], headers=headers)
    raw = open_connection()
    response = Response(stream(raw, sql, params, fmt), content_type=CONTENT_TYPES[fmt], headers=headers)
    response.call_on_close(raw.close)  # also when the download ends before its first chunk
    return response


def check_free() -> None:
    """Raise the Unavailable an export would meet now, taking nothing: a HEAD answers as its GET would.

    A look, not a promise: a slot free now may be taken before the GET comes.
    """
    with _slots_lock:
        _check_share(current_tenant().id)
    if _export_engine().pool.checkedout() >= current_app.config["EXPORT_CONCURRENCY"]:
        raise _all_busy()


def _check_share(tenant_id: str) -> None:
    """Refuse an organization that streams its share already (half the slots); call holding `_slots_lock`."""
    share = max(1, current_app.config["EXPORT_CONCURRENCY"] // 2)
    if _held.get(tenant_id, 0) >= share:
        raise Unavailable(f"Your organization has {share} exports running already; try again when one ends.",
                          retry_after=5)


def _all_busy() -> Unavailable:
    return Unavailable("Too many exports are running right now; try again shortly.", retry_after=5)


def _export_engine() -> sa.Engine:
    """Return the exports' engine for the current tenant's shard (one pool per shard and process)."""
    tenant = current_tenant()
    engines = current_app.extensions.setdefault("tms_export_engines", {})
    engine = engines.get(tenant.shard)
    if engine is None:
        with _engine_lock:
            engine = engines.get(tenant.shard)
            if engine is None:
                timeout = current_app.config["EXPORT_STATEMENT_TIMEOUT_MS"]
                engine = sa.create_engine(engine_for(tenant).url, pool_size=current_app.config["EXPORT_CONCURRENCY"],
                                          max_overflow=0, pool_timeout=1, pool_recycle=3600,
                                          connect_args={"connect_timeout": current_app.config["DB_CONNECT_TIMEOUT"],
                                                        **keepalive_args(f"-c statement_timeout={timeout}")})
                engines[tenant.shard] = engine
    return engine


def stream(raw: ExportConnection, sql: str, params: dict[str, Any], fmt: str) -> Iterator[bytes]:
    """Return the export's chunks from `raw` (see `open_connection`), which is given back when they end.

    The COPY starts here, in the request: an error at its start (the tenant's schema mid-move, a
    lost database) is then the request's, which the app answers as any other (503, retry), instead
    of a 200 cut short. A client that stops reading ends its download after `EXPORT_SEND_TIMEOUT`
    seconds without taking a chunk (the server's send times out), so it cannot keep a slot for the
    statement timeout.
    """
    chunks = _chunks(raw, sql, params, fmt)
    next(chunks)  # to the COPY's start; on an error `_chunks` has given `raw` back already
    return chunks  # a started generator: closing it (a download cut short) cancels the COPY


def _chunks(raw: ExportConnection, sql: str, params: dict[str, Any], fmt: str) -> Iterator[bytes]:
    before = raw.client.gettimeout() if raw.client is not None else None
    try:
        if raw.client is not None:
            raw.client.settimeout(raw.send_timeout)
        with raw.cursor() as cursor, driver_errors_as_sqlalchemys(raw.engine, raw.raw), \
                cursor.copy(sql, params) as copy:
            yield b""  # started (see `stream`)
            chunks = (bytes(chunk) for chunk in copy)
            yield from (_json_array(chunks) if fmt == "json" else chunks)
        raw.rollback()
    finally:
        if raw.client is not None:
            with contextlib.suppress(OSError):
                raw.client.settimeout(before)
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
