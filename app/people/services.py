"""People operations shared by the API, the UI, the CLI and the seed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app import audit
from app.auth import key_cache
from app.extensions import db
from app.outbox import emit
from app.people.models import Team, TeamMember, User
from app.people.passwords import hash_password
from tenants.models import ApiKey

USER_FIELDS = ("email", "name", "role", "skills", "capacity", "available")


class Conflict(Exception):
    """The change clashes with existing state (a taken email or name, the last admin)."""


def get_user(user_id: uuid.UUID) -> User | None:
    user = db.session.get(User, user_id)
    return None if user is None or user.deleted_at is not None else user


def user_by_email(email: str) -> User | None:
    return db.session.execute(
        sa.select(User).where(sa.func.lower(User.email) == email.lower(), User.deleted_at.is_(None))
    ).scalar_one_or_none()


def _snapshot(user: User) -> dict[str, Any]:
    return {f: getattr(user, f) for f in USER_FIELDS}


def create_user(email: str, name: str, role: str, password: str | None = None,
                skills: list[str] | None = None, capacity: int | None = None,
                available: bool = True) -> User:
    """Add a user; a taken email raises Conflict."""
    if user_by_email(email) is not None:
        raise Conflict("A user with this email already exists.")
    user = User(id=uuid.uuid4(), email=email, name=name, role=role, skills=sorted(set(skills or [])),
                capacity=capacity, available=available,
                password_hash=hash_password(password) if password else None)
    db.session.add(user)
    _flush_unique("A user with this email already exists.")
    audit.record("user", user.id, "created", after=_snapshot(user))
    return user


def update_user(user: User, changes: dict[str, Any]) -> User:
    """Apply changes to a user; freeing capacity lets the unassigned queue drain."""
    before = _snapshot(user)
    new_email = changes.get("email", user.email)
    if new_email.lower() != user.email.lower() and user_by_email(new_email) is not None:
        raise Conflict("A user with this email already exists.")
    if changes.get("role", user.role) != "admin" and user.role == "admin":
        _ensure_another_admin(user)
    for field in USER_FIELDS:
        if field in changes:
            value = changes[field]
            setattr(user, field, sorted(set(value)) if field == "skills" else value)
    if "password" in changes:
        user.password_hash = hash_password(changes["password"])
        user.session_version += 1
    _flush_unique("A user with this email already exists.")
    after = _snapshot(user)
    if after != before:
        audit.record("user", user.id, "updated", before=before, after=after)
        emit("agent.changed", {"user_id": str(user.id)})
    return user


def delete_user(user: User) -> None:
    """Deactivate a user: sign them out, revoke their keys, take them off every team."""
    if user.role == "admin":
        _ensure_another_admin(user)
    user.deleted_at = datetime.now(UTC)
    user.available = False
    user.session_version += 1
    db.session.execute(sa.delete(TeamMember).where(TeamMember.user_id == user.id))
    db.session.execute(
        sa.update(ApiKey).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=sa.func.now())
    )
    key_cache.change_on_commit(db.session)
    audit.record("user", user.id, "deleted", before=_snapshot(user))


def _ensure_another_admin(user: User) -> None:
    others = db.session.execute(
        sa.select(sa.func.count()).select_from(User)
        .where(User.role == "admin", User.deleted_at.is_(None), User.id != user.id)
    ).scalar_one()
    if others == 0:
        raise Conflict("An organization needs at least one admin.")


def _flush_unique(message: str) -> None:
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:
        raise Conflict(message) from exc


def team_member_ids(team_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Return the member ids of each team, in one query."""
    members: dict[uuid.UUID, list[uuid.UUID]] = {t: [] for t in team_ids}
    if team_ids:
        rows = db.session.execute(
            sa.select(TeamMember.team_id, TeamMember.user_id)
            .where(TeamMember.team_id.in_(team_ids)).order_by(TeamMember.created_at)
        )
        for team_id, user_id in rows:
            members[team_id].append(user_id)
    return members


def create_team(name: str, description: str | None = None) -> Team:
    team = Team(id=uuid.uuid4(), name=name, description=description)
    db.session.add(team)
    _flush_unique("A team with this name already exists.")
    audit.record("team", team.id, "created", after={"name": name, "description": description})
    return team


def update_team(team: Team, changes: dict[str, Any]) -> Team:
    before = {"name": team.name, "description": team.description}
    for field in ("name", "description"):
        if field in changes:
            setattr(team, field, changes[field])
    _flush_unique("A team with this name already exists.")
    audit.record("team", team.id, "updated", before=before,
                 after={"name": team.name, "description": team.description})
    return team


def delete_team(team: Team) -> None:
    audit.record("team", team.id, "deleted", before={"name": team.name})
    db.session.delete(team)


def add_member(team: Team, user: User) -> bool:
    """Put a staff user on a team; return False if they were on it already."""
    if not user.is_staff:
        raise ValueError("Only agents and admins can be team members.")
    exists = db.session.get(TeamMember, (team.id, user.id))
    if exists is not None:
        return False
    db.session.add(TeamMember(team_id=team.id, user_id=user.id))
    audit.record("team", team.id, "member_added", after={"user_id": user.id})
    emit("agent.changed", {"user_id": str(user.id)})
    return True


def remove_member(team: Team, user_id: uuid.UUID) -> bool:
    """Take a user off a team; return False if they were not on it."""
    deleted = db.session.execute(
        sa.delete(TeamMember).where(TeamMember.team_id == team.id, TeamMember.user_id == user_id)
    ).rowcount
    if deleted:
        audit.record("team", team.id, "member_removed", before={"user_id": user_id})
    return bool(deleted)
