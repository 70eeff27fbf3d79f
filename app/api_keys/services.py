"""API keys of the current tenant: list, create (the key is returned once), revoke."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from app import audit
from app.auth.actor import Actor
from app.auth.keys import mint_key, revoke_key
from app.auth.ratelimit import last_used
from app.errors import Invalid, NotFound
from app.extensions import db
from app.pagination import SortKey, page
from app.people.models import ROLES
from app.people.services import get_user
from tenants import ApiKey, current_tenant

KEYS = [SortKey(ApiKey.created_at, kind="datetime"), SortKey(ApiKey.id, kind="uuid")]


def _tenant_keys() -> sa.Select:
    return sa.select(ApiKey).where(ApiKey.tenant_id == uuid.UUID(current_tenant().id))


def list_keys(limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Return a page of the tenant's keys, oldest first, with when each was last used (never the keys)."""
    keys, next_cursor = page(db.session, _tenant_keys(), KEYS, limit, cursor)
    used = last_used(current_tenant().id, [str(k.id) for k in keys])
    return [{**_view(k), "last_used_at": _when(used.get(str(k.id)))} for k in keys], next_cursor


def _view(record: ApiKey) -> dict[str, Any]:
    return {c: getattr(record, c) for c in ("id", "name", "role", "user_id", "prefix", "created_at", "revoked_at")}


def _when(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def create_key(actor: Actor, name: str, role: str, user_id: uuid.UUID | None) -> dict[str, Any]:
    """Mint a key acting as `user_id` (default: the actor) with `role`, which may not exceed the user's."""
    user = get_user(user_id or actor.user_id)
    if user is None:
        raise Invalid.field("user_id", "No such user.", "No such user.")
    if ROLES.index(role) < ROLES.index(user.role):
        raise Invalid.field("role", f"The user is a {user.role}.", "A key cannot have a higher role than its user.")
    record, plaintext = mint_key(uuid.UUID(current_tenant().id), user.id, name, role)
    audit.record("api_key", record.id, "created", after={"name": record.name, "role": record.role,
                                                         "user_id": user.id})
    return {**_view(record), "last_used_at": None, "key": plaintext}


def revoke(key_id: uuid.UUID) -> None:
    """Revoke one of the tenant's live keys; it is refused from the next request on, in every process."""
    record = db.session.execute(_tenant_keys().where(ApiKey.id == key_id)).scalar_one_or_none()
    if record is None or record.revoked_at is not None:
        raise NotFound("No such API key.")
    revoke_key(record)
    audit.record("api_key", record.id, "revoked")
