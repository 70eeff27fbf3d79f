"""Create an organization in one transaction: registry row, schema, admin user, admin key."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from app.auth.keys import mint_key
from app.errors import Unavailable
from app.extensions import db
from app.people.services import check_plain, create_user
from tenants import NoRoom, Tenant, create_tenant, new_tenant_ref, tenant_context


@dataclass
class Signup:
    tenant: Tenant
    admin_id: uuid.UUID
    api_key: str


def sign_up(name: str, slug: str, admin_email: str, admin_password: str,
            admin_name: str | None = None, before_commit: Callable[[Signup], None] | None = None) -> Signup:
    """Provision a tenant with its admin; raises `SlugTaken` if the slug is in use.

    `before_commit` gets the signup in its transaction (to keep its response with it, all or nothing).
    """
    check_plain(admin_email, "admin_email")
    try:
        ref = new_tenant_ref(slug)
    except NoRoom as exc:
        raise Unavailable("No room for new organizations right now; try again later.", retry_after=3600) from exc
    with tenant_context(ref):
        try:
            tenant = create_tenant(name)
            admin = create_user(email=admin_email, name=admin_name or admin_email.split("@")[0],
                                role="admin", password=admin_password)
            admin_id = admin.id
            _, key = mint_key(tenant.id, admin_id, "Created at signup", "admin")
            if before_commit is not None:
                before_commit(Signup(tenant=tenant, admin_id=admin_id, api_key=key))
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
    return Signup(tenant=tenant, admin_id=admin_id, api_key=key)
