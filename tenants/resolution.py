"""Find the tenant of a request, failing closed: an unknown or suspended tenant is a 404.

The UI names its tenant in the path (`/t/<slug>/...`, on any host) or the subdomain
(`<slug>.<TENANT_DOMAIN>`). A small WSGI middleware moves the path prefix into `SCRIPT_NAME`,
so views and `url_for` work the same under either form. The API ignores both: the key alone
names the tenant, and a path naming another tenant is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable

import sqlalchemy as sa
from flask import request

from tenants.context import TenantRef
from tenants.database import UnknownShard, db, engine_for
from tenants.models import Tenant
from tenants.names import is_slug, moved_schema

ENVIRON_SLUG = "tms.tenant_slug"
_PATH_PREFIX = re.compile(r"/t/([^/]*)(/.*)?", re.DOTALL)


class TenantPathMiddleware:
    """Move `/t/<slug>` from the path into `SCRIPT_NAME`, and read `<slug>.<domain>` hosts."""

    def __init__(self, wsgi_app: Callable, tenant_domain: str = "") -> None:
        self.wsgi_app = wsgi_app
        self.tenant_domain = tenant_domain.lower().lstrip(".")

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        match = _PATH_PREFIX.fullmatch(environ.get("PATH_INFO", ""))
        if match and is_slug(match.group(1)):
            slug, rest = match.group(1), match.group(2) or "/"
            environ[ENVIRON_SLUG] = slug
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + f"/t/{slug}"
            environ["PATH_INFO"] = rest
        elif self.tenant_domain:
            host = environ.get("HTTP_HOST", "").split(":")[0]
            suffix = "." + self.tenant_domain
            if host.isascii() and host.lower().endswith(suffix) and is_slug(host.lower()[: -len(suffix)]):
                environ[ENVIRON_SLUG] = host.lower()[: -len(suffix)]
        return self.wsgi_app(environ, start_response)


def requested_slug() -> str | None:
    """Return the tenant slug the URL names, if any."""
    return request.environ.get(ENVIRON_SLUG)


def active_tenant(slug: str) -> Tenant | None:
    """Return the active tenant with exactly this slug, or None (a malformed slug matches nothing)."""
    if not is_slug(slug):
        return None
    return db.session.execute(
        sa.select(Tenant).where(Tenant.slug == slug, Tenant.status == "active")
    ).scalar_one_or_none()


def tenant_is_active(tenant_id: str) -> bool:
    """Tell whether the tenant with this id exists and is active (one indexed lookup)."""
    return db.session.execute(
        sa.select(Tenant.id).where(Tenant.id == tenant_id, Tenant.status == "active")
    ).first() is not None


def active_tenants(slugs: Collection[str] | None = None) -> list[TenantRef]:
    """Return every active tenant (or those of `slugs`), oldest first."""
    stmt = sa.select(Tenant).where(Tenant.status == "active").order_by(Tenant.created_at)
    if slugs is not None:
        stmt = stmt.where(Tenant.slug.in_(list(slugs)))
    return [tenant.ref() for tenant in db.session.execute(stmt).scalars()]


def tenant_moved(tenant: TenantRef) -> bool:
    """Tell whether `tenant` is moving or has moved off the database its ref names (see `tenants.moves`).

    For a request or socket whose tenant's schema vanished under it: its schema on that database
    is fenced for a move about to switch, or the registry places the tenant elsewhere now. The
    fence is looked for first: a move fences, switches, then drops the fence, so a fence gone by
    the first read means the registry already names the new place at the second. (The other way
    round, a move could switch and drop between the reads, and a request it met answered 500.)
    A database the ref names that no longer answers, or is no longer configured, leaves the
    registry to tell.
    """
    try:
        with engine_for(tenant).connect() as conn:
            if conn.execute(sa.text("select 1 from pg_namespace where nspname = :name"),
                            {"name": moved_schema(tenant.id)}).first() is not None:
                return True
    except (sa.exc.OperationalError, sa.exc.InterfaceError, UnknownShard):
        pass
    placed = db.session.execute(
        sa.select(Tenant.shard, Tenant.txid_offset).where(Tenant.id == tenant.id)).first()
    return placed is not None and tuple(placed) != (tenant.shard, tenant.txid_offset)
