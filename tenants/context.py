"""Which tenant the current request or job acts for (a context variable, never connection state).

`tenant_context()` enters a tenant and restores the previous one on the way out. Switching
tenants under an open transaction is refused: that transaction's connection renders the old
tenant's schema (see `tenants.database`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from tenants.names import PRIMARY_SHARD, checked_schema, checked_shard

PLACEHOLDER = "tenant"


@dataclass(frozen=True)
class TenantRef:
    """The few facts about a tenant that a request or job needs; safe to share across threads."""

    id: str
    slug: str
    schema: str
    shard: str = PRIMARY_SHARD  # the database its schema lives in (see `tenants.shards`)
    # Added to its database's transaction ids where the tenant records them (the event feed's
    # order), so they keep rising when a move puts the tenant on a database whose ids are lower.
    txid_offset: int = 0

    def __post_init__(self) -> None:
        checked_schema(self.schema)  # a schema name is checked where it is built, whatever came before
        checked_shard(self.shard)


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
    from tenants.database import db

    if db.session.registry.has():  # else no session, so no transaction: none is made just to ask
        _guard_switch(db.session(), tenant)
    return _current.set(tenant)


def forget_current_tenant() -> None:
    """Drop the tenant at the end of a request, after its session is gone (no switch guard)."""
    _current.set(None)


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
    from tenants.database import db

    token = set_current_tenant(tenant)
    try:
        yield tenant
    finally:
        _guard_switch(db.session(), token.old_value if token.old_value is not token.MISSING else None)
        _current.reset(token)
