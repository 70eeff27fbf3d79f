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


def compile_for_tenant(stmt: sa.Select) -> tuple[str, dict[str, Any]]:
    """Return the SQL of `stmt` with the current tenant's schema written in, and its parameters.

    For SQL that SQLAlchemy does not execute itself (`COPY (...) TO STDOUT`).
    """
    compiled = stmt.compile(dialect=db.engine.dialect,
                            schema_translate_map={PLACEHOLDER: checked_schema(current_tenant().schema)},
                            render_schema_translate=True, compile_kwargs={"render_postcompile": True})
    return compiled.string, compiled.params
