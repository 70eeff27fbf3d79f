"""Find the tenant of a request, failing closed: an unknown or suspended tenant is a 404.

The UI names its tenant in the path (`/t/<slug>/...`, on any host) or the subdomain
(`<slug>.<TENANT_DOMAIN>`). A small WSGI middleware moves the path prefix into `SCRIPT_NAME`,
so views and `url_for` work the same under either form. The API ignores both: the key alone
names the tenant, and a path naming another tenant is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import sqlalchemy as sa
from flask import request

from app.extensions import db
from tenants.models import Tenant

ENVIRON_SLUG = "tms.tenant_slug"
_PATH_PREFIX = re.compile(r"^/t/([a-z][a-z0-9-]{1,39})(/.*)?$")


class TenantPathMiddleware:
    """Move `/t/<slug>` from the path into `SCRIPT_NAME`, and read `<slug>.<domain>` hosts."""

    def __init__(self, wsgi_app: Callable, tenant_domain: str = "") -> None:
        self.wsgi_app = wsgi_app
        self.tenant_domain = tenant_domain.lower().lstrip(".")

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        match = _PATH_PREFIX.match(environ.get("PATH_INFO", ""))
        if match:
            slug, rest = match.group(1), match.group(2) or "/"
            environ[ENVIRON_SLUG] = slug
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + f"/t/{slug}"
            environ["PATH_INFO"] = rest
        elif self.tenant_domain:
            host = environ.get("HTTP_HOST", "").split(":")[0].lower()
            suffix = "." + self.tenant_domain
            if host.endswith(suffix) and host.count(".") == self.tenant_domain.count(".") + 1:
                environ[ENVIRON_SLUG] = host[: -len(suffix)]
        return self.wsgi_app(environ, start_response)


def requested_slug() -> str | None:
    """Return the tenant slug the URL names, if any."""
    return request.environ.get(ENVIRON_SLUG)


def active_tenant(slug: str) -> Tenant | None:
    """Return the active tenant with this slug, or None."""
    return db.session.execute(
        sa.select(Tenant).where(Tenant.slug == slug, Tenant.status == "active")
    ).scalar_one_or_none()
