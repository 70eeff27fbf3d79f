"""Ask one question of many tenant schemas in few round trips, one schema per statement.

The relay wants to know which of thousands of tenants have work waiting, and `migrate` which
schemas are at head. Each schema gets its own small statement naming that schema alone, so no
statement ever spans two tenants: a tenant can sit on any shard, and on Citus each schema can sit
on another node. The statements for one database are sent in psycopg's pipeline mode, a chunk per
round trip, so asking 10,000 schemas costs a few dozen round trips, not 10,000. The schema and
table names written into them are checked here, so callers never build SQL names themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import psycopg
import sqlalchemy as sa

from tenants.context import TenantRef
from tenants.database import UnknownShard, engine_for, note_tenants
from tenants.names import IDENTIFIER, checked_schema

log = logging.getLogger(__name__)
SCHEMA_MARK = "__schema__"
CHUNK = 500


def ask_each(engine: sa.Engine, schemas: Iterable[str], sql: str, params: dict[str, Any] | None = None,
             chunk: int = CHUNK) -> tuple[dict[str, Any], set[str]]:
    """Run `sql` (SQLAlchemy text, `__schema__` standing for the schema) once per schema on `engine`.

    Returns the first column of each schema's first row (None for no row), and the schemas whose
    chunk failed (a damaged or half-migrated schema fails its chunk, whose others are unknown).
    """
    schemas = [checked_schema(s) for s in schemas]  # they are written into the SQL below
    compiled = sa.text(sql).compile(dialect=engine.dialect)
    template, values = compiled.string, compiled.construct_params(params or {})
    answers: dict[str, Any] = {}
    failed: set[str] = set()
    raw = engine.raw_connection()
    try:
        conn: psycopg.Connection = raw.driver_connection
        note_tenants(raw, schemas)
        for start in range(0, len(schemas), chunk):
            part = schemas[start:start + chunk]
            try:
                with conn.pipeline():
                    cursors = [conn.execute(template.replace(SCHEMA_MARK, f'"{s}"'), values, prepare=False)
                               for s in part]
                for schema, cursor in zip(part, cursors, strict=True):
                    row = cursor.fetchone()
                    answers[schema] = row[0] if row else None
            except psycopg.Error as exc:
                log.warning("%d schemas could not be asked (%s): %s", len(part), sql[:60], exc)
                failed.update(part)
            conn.rollback()
    finally:
        raw.close()
    return answers, failed


def tenants_having(tenants: list[TenantRef], table: str, condition: str, params: dict[str, Any] | None = None,
                   chunk: int = CHUNK) -> list[TenantRef]:
    """Return the tenants whose `table` has a row where `condition` (SQL with bind parameters) holds.

    A tenant whose probe could not be read is returned too, so the caller visits it on its own
    and finds out what is wrong; tenants on a shard this process has no database for, or whose
    database does not answer, are skipped (one shard down must not stop the work of the others).
    """
    if IDENTIFIER.fullmatch(table) is None:
        raise ValueError(f"not a table name: {table!r}")
    by_shard: dict[str, list[TenantRef]] = {}
    for tenant in tenants:
        by_shard.setdefault(tenant.shard, []).append(tenant)
    sql = f"select exists (select 1 from {SCHEMA_MARK}.{table} where {condition})"
    hits: set[str] = set()
    for group in by_shard.values():
        try:
            engine = engine_for(group[0])
        except UnknownShard as exc:
            log.warning("%d tenants skipped: %s", len(group), exc)
            continue
        try:
            answers, failed = ask_each(engine, [t.schema for t in group], sql, params, chunk)
        except (sa.exc.OperationalError, psycopg.OperationalError) as exc:
            log.warning("%d tenants of shard %s skipped: its database does not answer: %s",
                        len(group), group[0].shard, exc)
            continue
        hits |= failed | {schema for schema, found in answers.items() if found}
    return [t for t in tenants if t.schema in hits]
