"""API keys of the current tenant: list, create (the key is returned once), revoke."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from app import audit
from app.auth import key_cache
from app.auth.actor import Actor
from app.auth.keys import mint_key, revoke_key
from app.auth.ratelimit import last_used
from app.errors import Conflict, Invalid, NotFound
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
    return {c: getattr(record, c) for c in ("id", "name", "role", "user_id", "prefix", "created_at", "revoked_at",
                                             "expires_at")}


def _when(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _check_acting_key(actor: Actor, rotating: ApiKey | None = None) -> None:
    """Refuse (409) a key being replaced making keys (they would outlive it), and a key rotating a key it
    was made with (revoking the old key would take the rotating key, then the successor, along)."""
    if actor.api_key_id is None:
        return
    acting = db.session.get(ApiKey, actor.api_key_id)
    if acting is None:
        return
    if acting.expires_at is not None:
        raise Conflict("This key is being replaced; make and rotate keys with its successor.")
    ancestor, seen = acting, set()
    while rotating is not None and ancestor is not None and ancestor.made_with not in (None, *seen):
        if ancestor.made_with == rotating.id:
            raise Conflict("A key cannot rotate a key it was made with; rotate it with another key.")
        seen.add(ancestor.made_with)
        ancestor = db.session.get(ApiKey, ancestor.made_with)


def create_key(actor: Actor, name: str, role: str, user_id: uuid.UUID | None) -> dict[str, Any]:
    """Mint a key acting as `user_id` (default: the actor) with `role`, which may not exceed the user's."""
    _check_acting_key(actor)
    user = get_user(user_id or actor.user_id)
    if user is None:
        raise Invalid.field("user_id", "No such user.", "No such user.")
    if ROLES.index(role) < ROLES.index(user.role):
        raise Invalid.field("role", f"The user is a {user.role}.", "A key cannot have a higher role than its user.")
    record, plaintext = mint_key(uuid.UUID(current_tenant().id), user.id, name, role, created_by=actor.user_id,
                                 made_with=actor.api_key_id)
    db.session.flush()
    db.session.refresh(record, ["created_at"])
    audit.record("api_key", record.id, "created", after={"name": record.name, "role": record.role,
                                                         "user_id": user.id})
    return {**_view(record), "last_used_at": None, "key": plaintext}


def live_key(key_id: uuid.UUID) -> ApiKey:
    """Return one of the tenant's keys that still works, locked; NotFound otherwise."""
    record = db.session.execute(_tenant_keys().where(ApiKey.id == key_id).with_for_update()).scalar_one_or_none()
    if record is None or record.revoked_at is not None or (
            record.expires_at is not None and record.expires_at <= datetime.now(UTC)):
        raise NotFound("No such API key.")
    return record


def revoke(key_id: uuid.UUID) -> None:
    """Revoke one of the tenant's live keys; it is refused from the next request on, in every process."""
    record = live_key(key_id)
    revoke_key(record)
    audit.record("api_key", record.id, "revoked")


def rotate(actor: Actor, key_id: uuid.UUID, grace_seconds: int) -> dict[str, Any]:
    """Mint a successor with the same name, role and user; the old key works `grace_seconds` more.

    With no grace the old key is revoked at once. Rotating a key that is already in its grace
    period shortens nothing: its successor is minted, and it keeps its end. The successor is the
    actor's making (they hold it now), unless the key rotates itself: then it is the old key renewed,
    with its maker and the key it was made with. The keys made with the old key move to the successor.
    """
    old = live_key(key_id)
    _check_acting_key(actor, rotating=old)
    maker = (old.created_by, old.made_with) if actor.api_key_id == old.id else (actor.user_id, actor.api_key_id)
    record, plaintext = mint_key(old.tenant_id, old.user_id, old.name, old.role, *maker)
    db.session.flush()
    # The keys made with the old key hang from its successor now: revoking the old one (now, or when its
    # grace ends) leaves them be, and revoking the successor takes them along.
    db.session.execute(sa.update(ApiKey).where(ApiKey.made_with == old.id, ApiKey.revoked_at.is_(None),
                                               ApiKey.id != record.id).values(made_with=record.id))
    if grace_seconds == 0:
        revoke_key(old)
    else:
        ends = datetime.now(UTC) + timedelta(seconds=grace_seconds)
        old.expires_at = min(old.expires_at, ends) if old.expires_at else ends
        key_cache.change_on_commit()
    audit.record("api_key", old.id, "rotated", after={"successor_id": record.id, "grace_seconds": grace_seconds})
    audit.record("api_key", record.id, "created", after={"name": record.name, "role": record.role,
                                                         "user_id": record.user_id, "replaces": old.id})
    db.session.flush()
    return {**_view(record), "last_used_at": None, "key": plaintext, "replaced_key_id": old.id,
            "replaced_key_expires_at": old.revoked_at or old.expires_at}
