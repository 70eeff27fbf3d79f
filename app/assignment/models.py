"""Assignment rules and the recorded decision for each assignment."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import TENANT_SCHEMA, created_at, fk, updated_at, uuid_pk

STRATEGIES = ("round_robin", "least_loaded", "skills")

class AssignmentRule(db.Model):
    __tablename__ = "assignment_rules"
    __table_args__ = (
        sa.CheckConstraint("strategy in ('round_robin', 'least_loaded', 'skills')", name="strategy"),
        sa.Index("ix_assignment_rules_position", "position"),
        TENANT_SCHEMA,
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(sa.String(200))
    position: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    conditions: Mapped[dict] = mapped_column(JSONB, default=dict, server_default="{}")
    team_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("tenant.teams.id", ondelete="CASCADE"), nullable=False
    )
    strategy: Mapped[str] = mapped_column(sa.String(16))
    required_skills: Mapped[list[str]] = mapped_column(ARRAY(sa.String(64)), default=list, server_default="{}")
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class AssignmentDecision(db.Model):
    """Why a ticket was (or was not) assigned as it was: one row per decision."""

    __tablename__ = "assignment_decisions"
    __table_args__ = (
        sa.Index("ix_assignment_decisions_ticket", "ticket_id", "created_at"),
        sa.Index("ix_assignment_decisions_created", "created_at"),  # decisions per rule over a period
        TENANT_SCHEMA,
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    ticket_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("tenant.tickets.id", ondelete="CASCADE"), nullable=False
    )
    source: Mapped[str] = mapped_column(sa.String(16))  # "auto" or "manual"
    rule_id: Mapped[uuid.UUID | None] = fk("assignment_rules.id", ondelete="SET NULL")
    rule_name: Mapped[str | None] = mapped_column(sa.String(200))
    strategy: Mapped[str | None] = mapped_column(sa.String(16))
    team_id: Mapped[uuid.UUID | None] = fk("teams.id", ondelete="SET NULL")
    candidates: Mapped[list] = mapped_column(JSONB, default=list, server_default="[]")
    chosen_user_id: Mapped[uuid.UUID | None] = fk("users.id")
    reason: Mapped[str] = mapped_column(sa.Text)
    actor_id: Mapped[uuid.UUID | None] = fk("users.id")
    created_at: Mapped[datetime] = created_at()
