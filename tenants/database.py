"""The database handle, and how a statement reaches the current tenant's schema.

Tenant tables are declared in the placeholder schema `tenant`. Each transaction's connection is
taken from an engine carrying `schema_translate_map={"tenant": "tenant_<slug>"}`, so SQLAlchemy
renders the real schema into every statement it compiles. Nothing is ever `SET` on the
connection, so a pooled connection carries no tenant from one request to the next (unlike a
session-level `search_path`). With no tenant in context the placeholder is left as is and the
query fails: there is no schema called `tenant`, so we fail closed instead of guessing.

`db` lives here, not in `app/`, because the session class is what scopes queries to a tenant;
the app binds it with `db.init_app(app)` like any other extension.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session as FlaskSession
from psycopg import pq

from tenants.context import PLACEHOLDER, current_tenant, current_tenant_or_none
from tenants.names import checked_schema

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


class TenantSession(FlaskSession):
    """A session whose connections render the current tenant's schema into every statement."""

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        engine = super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)
        tenant = current_tenant_or_none()
        return _translated(engine, tenant.schema if tenant else PLACEHOLDER)


db = SQLAlchemy(metadata=sa.MetaData(naming_convention=NAMING), session_options={"class_": TenantSession})


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
