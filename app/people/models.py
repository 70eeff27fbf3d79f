"""Users and teams of one tenant."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import TENANT_SCHEMA, created_at, fk, updated_at, uuid_pk

ROLES = ("admin", "agent", "requester")  # most powerful first
STAFF_ROLES = ("admin", "agent")


def lesser_role(a: str, b: str) -> str:
    """Return the less powerful of two roles."""
    return max(a, b, key=ROLES.index)


class User(db.Model):
    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint("role in ('admin', 'agent', 'requester')", name="role"),
        sa.CheckConstraint("capacity is null or capacity >= 0", name="capacity"),
        sa.Index("uq_users_email_lower", sa.text("lower(email)"), unique=True,
                 postgresql_where=sa.text("deleted_at is null")),
        TENANT_SCHEMA,
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    email: Mapped[str] = mapped_column(sa.String(254))
    name: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(16))
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    skills: Mapped[list[str]] = mapped_column(ARRAY(sa.String(64)), default=list, server_default="{}")
    capacity: Mapped[int | None] = mapped_column(sa.Integer)
    available: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    # Bumped on logout and password change: a session cookie minted before is refused.
    session_version: Mapped[int] = mapped_column(sa.Integer, default=1, server_default="1")
    last_assigned_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
    deleted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    # flask-login protocol
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"


class Team(db.Model):
    __tablename__ = "teams"
    __table_args__ = (sa.Index("uq_teams_name_lower", sa.text("lower(name)"), unique=True), TENANT_SCHEMA)

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(sa.Text)
    # Round robin pointer: the member who got the last ticket of this team, and when they joined it
    # (their place in the rotation, which goes on from there once they have left the team).
    last_assigned_user_id: Mapped[uuid.UUID | None] = fk("users.id", ondelete="SET NULL")
    last_assigned_place: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class TeamMember(db.Model):
    __tablename__ = "team_members"
    __table_args__ = (sa.Index("ix_team_members_user", "user_id"), TENANT_SCHEMA)

    team_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("tenant.teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("tenant.users.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = created_at()
