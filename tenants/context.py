"""Which tenant the current request or job acts for, and how queries reach its schema.

Tenant tables are declared in the placeholder schema `tenant`. Each transaction's connection is
taken from an engine carrying `schema_translate_map={"tenant": "tenant_<slug>"}`, so SQLAlchemy
renders the real schema into every statement it compiles. Nothing is ever `SET` on the
connection, so a pooled connection carries no tenant from one request to the next (unlike a
session-level `search_path`). With no tenant in context the placeholder is left as is and the
query fails: there is no schema called `tenant`, so we fail closed instead of guessing.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import sqlalchemy as sa
from flask_sqlalchemy.session import Session as FlaskSession

from tenants.names import checked_schema

PLACEHOLDER = "tenant"


@dataclass(frozen=True)
class TenantRef:
    """The few facts about a tenant that a request or job needs; safe to share across threads."""

    id: str
    slug: str
    schema: str

    def __post_init__(self) -> None:
        checked_schema(self.schema)  # a schema name is checked where it is built, whatever came before


_current: contextvars.ContextVar[TenantRef | None] = contextvars.ContextVar("tenant", default=None)


def current_tenant() -> TenantRef:
    """Return the tenant in context, or raise if there is none."""
    tenant = _current.get()
    if tenant is None:
        raise LookupError("no tenant in context")
    return tenant


def current_tenant_or_none() -> TenantRef | None:
    """Return the tenant in context, if any."""
    return _current.get()


def set_current_tenant(tenant: TenantRef | None) -> contextvars.Token:
    """Make `tenant` current; prefer `tenant_context`, which restores the previous one."""
    from app.extensions import db

    _guard_switch(db.session(), tenant)
    return _current.set(tenant)


def _guard_switch(session: sa.orm.Session, tenant: TenantRef | None) -> None:
    """Refuse to switch tenants under an open transaction (its connection keeps the old map)."""
    if _current.get() == tenant or not session.in_transaction():
        return
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("commit or roll back before switching tenant")
    session.close()


@contextmanager
def tenant_context(tenant: TenantRef) -> Iterator[TenantRef]:
    """Run the body as `tenant`, then restore whichever tenant was current before."""
    from app.extensions import db

    token = set_current_tenant(tenant)
    try:
        yield tenant
    finally:
        _guard_switch(db.session(), token.old_value if token.old_value is not token.MISSING else None)
        _current.reset(token)


@lru_cache(maxsize=8192)
def _translated(engine: sa.Engine, schema: str) -> sa.Engine:
    if schema != PLACEHOLDER:
        checked_schema(schema)
    return engine.execution_options(schema_translate_map={PLACEHOLDER: schema})


class TenantSession(FlaskSession):
    """A session whose connections render the current tenant's schema into every statement."""

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        engine = super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)
        tenant = _current.get()
        return _translated(engine, tenant.schema if tenant else PLACEHOLDER)
