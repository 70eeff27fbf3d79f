"""The database handle, and how a statement reaches the current tenant's schema.

Tenant tables are declared in the placeholder schema `tenant`. Each transaction's connection is
taken from an engine carrying `schema_translate_map={"tenant": "tenant_<slug>"}`, so SQLAlchemy
renders the real schema into every statement it compiles. Nothing is ever `SET` on the
connection, so a pooled connection carries no tenant from one request to the next (unlike a
session-level `search_path`). With no tenant in context the placeholder is left as is and the
query fails: there is no schema called `tenant`, so we fail closed instead of guessing.

`db` lives here, not in `app/`, because the session class is what scopes queries to a tenant;
the app binds it with `db.init_app(app)` like any other extension.

Shards: a tenant's schema lives in one database, its shard (the registry row says which). The
registry tables (`public`) live in the primary database alone. `engine_for(tenant)` is the one
place that picks a database; the session asks it for every statement. For a tenant on the primary,
registry and tenant statements share one connection and one transaction, as before; for a tenant
on another shard they take a connection each, and the tenant's shard commits first (a signup's
schema exists before the registry names it; a failed registry commit leaves an unnamed schema,
which the next signup of that slug replaces). No statement ever reads two databases.

Memory: PostgreSQL keeps every relation a connection has touched in that connection's caches,
for its lifetime, so one pooled connection serving thousands of tenants grows by hundreds of MB.
`limit_tenants_per_connection` closes a pooled connection, when it is returned, once it has
served a number of distinct tenants (`DB_CONNECTION_MAX_TENANTS`); see README, "Running at scale".
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from flask import has_app_context
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session as FlaskSession
from psycopg import pq

from tenants.context import PLACEHOLDER, TenantRef, current_tenant, current_tenant_or_none
from tenants.names import PRIMARY_SHARD, checked_schema

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


@lru_cache(maxsize=8192)
def _translated(engine: sa.Engine, schema: str) -> sa.Engine:
    if schema != PLACEHOLDER:
        checked_schema(schema)
    return engine.execution_options(schema_translate_map={PLACEHOLDER: schema})


REGISTRY_SCHEMA = "public"


def keepalive_args(options: str = "") -> dict[str, Any]:
    """Return the connect arguments every connection to a database takes, with `options` (server settings) added.

    A peer lost without a word (a network partition, a host gone) fails the connection in about
    a minute on both sides instead of the kernels' two hours: on ours, TCP keepalives and a
    limit on unacknowledged sends, so no request, relay or worker waits on it; on the server's,
    its own keepalives, so the backend of a client that vanished mid-transaction (a move's
    freeze, a migration) ends and lets go of its locks. Unix-socket connections ignore them.
    """
    server = "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"
    return {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
            "tcp_user_timeout": 60_000, "options": f"{options} {server}".strip()}


class UnknownShard(LookupError):
    """The registry names a shard this process has no database for (see `DATABASE_SHARDS`)."""


def engine_for(tenant: TenantRef | None) -> sa.Engine:
    """Return the engine of the database that holds `tenant`'s schema (the primary for no tenant)."""
    return shard_engine(tenant.shard if tenant is not None else PRIMARY_SHARD)


def shard_engine(shard: str) -> sa.Engine:
    """Return the engine of a shard by name; UnknownShard if this process has no database for it."""
    if shard == PRIMARY_SHARD:
        return db.engine
    try:
        return db.engines[shard]
    except KeyError:
        raise UnknownShard(f"no database for shard {shard!r}: DATABASE_SHARDS does not name it") from None


def _reads_registry(mapper, clause) -> bool:
    if mapper is not None:
        return getattr(sa.inspect(mapper).persist_selectable, "schema", None) == REGISTRY_SCHEMA
    tables = sa.sql.util.find_tables(clause, include_crud=True) if clause is not None else []
    return bool(tables) and all(t.schema == REGISTRY_SCHEMA for t in tables)


class TenantSession(FlaskSession):
    """A session whose connections render the current tenant's schema into every statement."""

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        engine = super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)
        tenant = current_tenant_or_none()
        if tenant is None:
            return _translated(engine, PLACEHOLDER)
        if tenant.shard != PRIMARY_SHARD and bind is None:
            if _reads_registry(mapper, clause):
                return engine  # the registry is in the primary database, whatever the tenant's shard
            engine = engine_for(tenant)
        return _translated(engine, tenant.schema)


db = SQLAlchemy(metadata=sa.MetaData(naming_convention=NAMING), session_options={"class_": TenantSession})
JOINED = "tms_joined_connections"


def _joined(session: sa.orm.Session, _transaction, connection: sa.Connection) -> None:
    joined = session.info.setdefault(JOINED, [])
    if all(c is not connection for c in joined):
        joined.append(connection)


def _ended(session: sa.orm.Session, transaction: sa.orm.SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(JOINED, None)


def _commit_shards_first(conn: sa.Connection) -> None:
    """Just before the primary commits a unit of work, commit the tenant shard it also wrote to."""
    if not has_app_context() or not db.session.registry.has():
        return
    joined = db.session().info.get(JOINED) or []
    if not any(c is conn for c in joined):
        return  # a connection of the primary outside the session's unit of work
    for other in joined:
        if other is not conn and not other.closed and other.engine.pool is not conn.engine.pool:
            other.connection.dbapi_connection.commit()  # SQLAlchemy's own commit of it then finds nothing to do


def init_engines(guard: bool, max_tenants_per_connection: int) -> None:
    """Set up every engine of the app (primary and shards): checkout guard, memory bound, commit order."""
    for engine in db.engines.values():
        if guard:
            guard_checkouts(engine)
        limit_tenants_per_connection(engine, max_tenants_per_connection)
    if len(db.engines) > 1:
        if not sa.event.contains(TenantSession, "after_begin", _joined):
            sa.event.listen(TenantSession, "after_begin", _joined)
            sa.event.listen(TenantSession, "after_transaction_end", _ended)
        if not sa.event.contains(db.engine, "commit", _commit_shards_first):
            sa.event.listen(db.engine, "commit", _commit_shards_first)


TOUCHED = "tms_tenants_touched"


def limit_tenants_per_connection(engine: sa.Engine, limit: int) -> None:
    """Close a pooled connection when it is returned once it has served `limit` distinct tenants (0: never).

    Each statement's tenant is read from its `schema_translate_map`; the set lives in the pool's
    record of the connection, so it starts empty with every new connection.
    """
    if limit <= 0 or sa.event.contains(engine, "before_cursor_execute", _note_tenant):
        return

    def retire(dbapi_connection, record) -> None:
        if dbapi_connection is not None and len(record.info.get(TOUCHED, ())) >= limit:
            record.invalidate()  # closed now; the pool opens a fresh one on its next checkout

    sa.event.listen(engine, "before_cursor_execute", _note_tenant)
    sa.event.listen(engine, "checkin", retire)


def note_tenants(connection: Any, schemas: Iterable[str]) -> None:
    """Count `schemas` as served by a pooled connection (a raw one, used past SQLAlchemy's statements)."""
    connection.info.setdefault(TOUCHED, set()).update(schemas)


def _note_tenant(conn, _cursor, _statement, _parameters, context, _executemany) -> None:
    options = context.execution_options if context is not None else conn.get_execution_options()
    schema = (options.get("schema_translate_map") or {}).get(PLACEHOLDER)
    if schema is not None and schema != PLACEHOLDER:
        conn.info.setdefault(TOUCHED, set()).add(schema)


DEFAULT_SEARCH_PATH = '"$user", public'


def guard_checkouts(engine: sa.Engine) -> None:
    """Check every connection handed out by the pool carries no tenant: default search_path, no transaction.

    For tests and staging (`POOL_CHECKOUT_GUARD`): it costs a round trip per checkout. A pooled
    connection that kept a `SET search_path` from a previous user would serve the next request
    another tenant's tables (django-tenants' issues 545, 732, 1112); this makes that impossible
    to miss.
    """
    if sa.event.contains(engine, "checkout", _check_checkout):
        return
    sa.event.listen(engine, "checkout", _check_checkout)


class PooledConnectionCarriesState(AssertionError):
    """A connection came out of the pool with a search_path or a transaction left by its last user."""


def _check_checkout(dbapi_connection, _record, _proxy) -> None:
    in_transaction = dbapi_connection.info.transaction_status != pq.TransactionStatus.IDLE
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("select current_setting('search_path')")
        search_path = cursor.fetchone()[0]
    finally:
        cursor.close()
    if not in_transaction:
        dbapi_connection.rollback()  # the check itself must leave nothing behind
    if search_path != DEFAULT_SEARCH_PATH or in_transaction:
        raise PooledConnectionCarriesState(f"pooled connection has search_path={search_path!r}, "
                                           f"transaction open: {in_transaction}")


SHADOW_ERROR = "tenant_schema_missed"


def shadow_tenant_tables(engine: sa.Engine) -> None:
    """Put in `public`, under each tenant table's name, a view that raises when it is read or written.

    For tests and staging: a statement that reaches a tenant table without the tenant's schema
    (raw SQL without a schema name, a lost search_path) would otherwise find nothing, or another
    tenant's rows; with the shadows it fails loudly, naming the table.
    """
    tables = [t for t in db.metadata.tables.values() if t.schema == PLACEHOLDER]
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE OR REPLACE FUNCTION public.{SHADOW_ERROR}(name text) RETURNS SETOF integer "
            "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'query missed the tenant schema: table %%', name; "
            "END $$")
        for table in tables:
            columns = ", ".join(f'NULL::{c.type.compile(engine.dialect)} AS "{c.name}"' for c in table.columns)
            conn.exec_driver_sql(f'CREATE OR REPLACE VIEW public."{table.name}" AS SELECT {columns} '
                                 f"FROM public.{SHADOW_ERROR}('{table.name}')")


def compile_for_tenant(stmt: sa.Select) -> tuple[str, dict[str, Any]]:
    """Return the SQL of `stmt` with the current tenant's schema written in, and its parameters.

    For SQL that SQLAlchemy does not execute itself (`COPY (...) TO STDOUT`).
    """
    compiled = stmt.compile(dialect=db.engine.dialect,
                            schema_translate_map={PLACEHOLDER: checked_schema(current_tenant().schema)},
                            render_schema_translate=True, compile_kwargs={"render_postcompile": True})
    return compiled.string, compiled.params


def one_at_a_time(name: str) -> None:
    """Wait for, and hold until the transaction ends, the current tenant's lock called `name`: for changes
    that count rows before adding one, which at once would each see room for one more."""
    db.session.execute(sa.text("select pg_advisory_xact_lock(hashtext(:name), hashtext(:schema))"),
                       {"name": name, "schema": current_tenant().schema})
