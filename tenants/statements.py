"""Prebuilt statements of tenant tables, compiled once per tenant schema, run on autocommit connections.

The hot paths (a ticket, a page of tickets, a new ticket or message) skip the ORM and the work
SQLAlchemy does on every execution: each statement is built once per process, and compiled once
per tenant with that tenant's schema written in by the same `schema_translate_map` rendering the
tenant session uses. So this is the session's scoping, cached, not a second mechanism: the text
names the schema, and nothing is ever set on the connection, so a pooled connection carries no
tenant to its next user (the checkout guard sees these checkouts too). With no tenant in context
nothing is compiled: `current_tenant()` raises.

Each statement keeps the texts of its most recently used tenants, so memory stays flat with
thousands of tenants; a tenant pushed out is compiled again on its next request.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import psycopg
import sqlalchemy as sa

from tenants.context import PLACEHOLDER, current_tenant, current_tenant_or_none
from tenants.database import db, engine_for, note_tenants
from tenants.names import checked_schema

TENANTS_PER_STATEMENT = 1000
# One cursor per pooled connection for single-row statements, kept on the connection (so it goes
# when the connection goes): psycopg keeps a cursor's adapters while it runs the same SQL text again,
# which a new cursor for every statement built afresh, about 30 µs of a 1-row read. It holds its
# last row until the connection's next such statement; results of many rows are never kept. Its
# loaders keep the session time zone of its first statement: nothing sets another on a pooled
# connection.
_CURSOR = "_tenant_statements_cursor"


class TenantStatement:
    """A statement of tenant tables whose SQL text is compiled once per tenant schema."""

    def __init__(self, statement: sa.Executable) -> None:
        self.statement = statement
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._literals: dict[str, object] = {}  # values the statement carries itself (`sa.literal`)
        self._order: tuple[str, ...] = ()  # the bind parameters' names, in the order of `$1`, `$2`, ...

    def one(self, conn: psycopg.Connection, params: dict[str, object], *, binary: bool = False) -> tuple | None:
        """Run a statement of at most one row (by key, a count, a RETURNING of one) and return it, or None.

        `binary` asks for the row in Postgres's binary format: the same Python values, read
        without parsing text.
        """
        return self.execute(_cursor_of(conn), params, binary=binary).fetchone()

    def all(self, conn: psycopg.Connection, params: dict[str, object], *, binary: bool = False) -> list[tuple]:
        """Run the statement and return all its rows, read on a cursor of their own and freed with it."""
        with psycopg.RawCursor(conn) as cursor:
            return self.execute(cursor, params, binary=binary).fetchall()

    def run(self, conn: psycopg.Connection, params: dict[str, object]) -> None:
        """Run a statement that returns no rows."""
        self.execute(_cursor_of(conn), params)

    def execute(self, cursor: psycopg.RawCursor, params: dict[str, object], *,
                binary: bool = False) -> psycopg.RawCursor:
        """Run the statement for the tenant in context on `cursor` with `params` (its bind parameters' values)."""
        return cursor.execute(self.sql(), self.positional(params), binary=binary)

    def positional(self, params: dict[str, object]) -> list[object]:
        """Return the values of the statement's `$1`, `$2`, ... from `params` and the values it carries itself."""
        given = {**self._literals, **params} if self._literals else params
        try:
            return [given[name] for name in self._order]
        except KeyError as missing:  # as psycopg says it, so it is mapped as every driver error is
            raise psycopg.ProgrammingError(f"query parameter missing: {missing.args[0]}") from None

    def sql(self) -> str:
        """Return the statement's SQL for the tenant in context (its schema written in), with `$n` parameters.

        Numbered as Postgres reads them, so psycopg sends the text as it is: with `%(name)s` it
        parsed the text for its placeholders on every run once it passed 4 KiB (a create with an
        Idempotency-Key, or any statement of a tenant with a long schema name), about 50 µs.
        """
        schema = current_tenant().schema
        with self._lock:
            text = self._texts.get(schema)
            if text is not None:
                self._texts.move_to_end(schema)
                return text
        compiled = self.statement.compile(
            dialect=_numbered_dialect(), schema_translate_map={PLACEHOLDER: checked_schema(schema)},
            render_schema_translate=True)
        text = compiled.string
        with self._lock:
            self._literals = {k: v for k, v in compiled.params.items() if v is not None}
            self._order = tuple(compiled.positiontup or ())
            self._texts[schema] = text
            if len(self._texts) > TENANTS_PER_STATEMENT:
                self._texts.popitem(last=False)
        return text


# What a dialect makes from its paramstyle, or for itself; everything else (what `initialize()`
# learnt from the server: its version, backslash escapes, JSONB subscripting ...) is the engine's.
OWN_ATTRIBUTES = frozenset({"paramstyle", "positional", "identifier_preparer", "type_compiler_instance",
                            "type_compiler", "_type_memos"})


@cache
def _numbered_dialect() -> sa.Dialect:
    """The engine's dialect writing `$1`-style parameters, made once (it only compiles, never connects).

    It copies what the server told the engine on its first connection (shards run the same
    PostgreSQL as the primary).
    """
    engine_dialect = db.engine.dialect
    if engine_dialect.server_version_info is None:  # not connected yet: let the server speak first
        with db.engine.connect():
            pass
    dialect = type(engine_dialect)(paramstyle="numeric_dollar")
    for name, value in vars(engine_dialect).items():
        if name not in OWN_ATTRIBUTES:
            setattr(dialect, name, value)
    return dialect


def _cursor_of(conn: psycopg.Connection) -> psycopg.RawCursor:
    cursor = getattr(conn, _CURSOR, None)
    if cursor is None or cursor.closed:
        cursor = psycopg.RawCursor(conn)
        setattr(conn, _CURSOR, cursor)
    return cursor


@contextmanager
def autocommit_connection() -> Iterator[psycopg.Connection]:
    """Lend a pooled connection of the current tenant's shard in autocommit: each statement is its own transaction.

    No BEGIN or COMMIT round trips; a single statement (CTEs included) is atomic on its own.
    Driver errors come out as SQLAlchemy's, so the app maps them as it maps the session's
    (a lost connection is invalidated and answers 503), and the connection goes back to the
    pool as it came out: not in autocommit, no transaction.
    """
    tenant = current_tenant_or_none()
    engine = engine_for(tenant)
    fairy = engine.raw_connection()
    if tenant is not None:
        note_tenants(fairy, (tenant.schema,))  # counted against DB_CONNECTION_MAX_TENANTS, as the session's are
    raw = fairy.dbapi_connection
    try:
        with driver_errors_as_sqlalchemys(engine, fairy):
            raw.autocommit = True
            try:
                yield raw
            finally:
                try:
                    raw.autocommit = False
                except psycopg.Error as exc:
                    fairy.invalidate(exc)  # a connection that cannot leave autocommit never goes back
    finally:
        fairy.close()


@contextmanager
def driver_errors_as_sqlalchemys(engine: sa.Engine, fairy: Any) -> Iterator[None]:
    """Raise psycopg's errors on a raw pooled connection (`fairy`) as SQLAlchemy's, so the app maps
    them as it maps the session's; a lost connection is invalidated, never lent again."""
    try:
        yield
    except psycopg.Error as exc:
        lost = engine.dialect.is_disconnect(exc, fairy.dbapi_connection, None)
        if lost:
            fairy.invalidate(exc)
        raise sa.exc.DBAPIError.instance(None, None, exc, psycopg.Error, connection_invalidated=lost) from exc
