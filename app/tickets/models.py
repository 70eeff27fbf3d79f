"""Tickets, numbered per tenant by the schema's own sequence."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import TENANT_SCHEMA, created_at, fk, updated_at, uuid_pk

PRIORITIES = ("low", "normal", "high", "urgent")
STATUSES = ("new", "open", "pending", "resolved", "closed")
OPEN_STATUSES = ("new", "open", "pending")

STATUS_RANK_SQL = (
    "case status when 'new' then 0 when 'open' then 1 when 'pending' then 2 when 'resolved' then 3 else 4 end"
)
SEARCH_VECTOR_SQL = (
    "setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B')"
)


class Ticket(db.Model):
    """A customer's request, numbered per tenant; `version` guards concurrent edits."""

    __tablename__ = "tickets"
    __table_args__ = (
        sa.CheckConstraint("priority in ('low', 'normal', 'high', 'urgent')", name="priority"),
        sa.CheckConstraint("status in ('new', 'open', 'pending', 'resolved', 'closed')", name="status"),
        sa.Index("ix_tickets_created", "created_at", "id"),
        sa.Index("ix_tickets_updated", "updated_at", "id"),
        # Open tickets only: each agent's load (assignment, the dashboard), the backlog by status and
        # priority, and the queues' counts (team included), read from the index alone.
        sa.Index("ix_tickets_open", "assignee_id", "status", "priority", postgresql_include=["team_id"],
                 postgresql_where=sa.text("status in ('new', 'open', 'pending')")),
        # The dashboard's closed per day, and its first-response and resolution percentiles.
        sa.Index("ix_tickets_closed_at", "closed_at", postgresql_where=sa.text("closed_at is not null")),
        sa.Index("ix_tickets_resolved_at", "resolved_at", postgresql_include=["created_at"],
                 postgresql_where=sa.text("resolved_at is not null")),
        sa.Index("ix_tickets_first_response", "created_at", postgresql_include=["first_response_at"],
                 postgresql_where=sa.text("first_response_at is not null")),
        sa.Index("ix_tickets_requester_created", "requester_id", "created_at", "id"),
        sa.Index("ix_tickets_priority_created", "priority_rank", "created_at", "id"),
        sa.Index("ix_tickets_status_rank_created", "status_rank", "created_at", "id"),
        sa.Index("ix_tickets_team_created", "team_id", "created_at", "id"),
        # `?category=`: only tickets that have one, so most creates write no entry.
        sa.Index("ix_tickets_category_created", "category", "created_at", "id",
                 postgresql_where=sa.text("category is not null")),
        sa.Index("ix_tickets_assignee_created", "assignee_id", "created_at", "id"),
        sa.Index("ix_tickets_assignee_updated", "assignee_id", "updated_at", "id"),  # an agent's queue by activity
        # An agent's tickets by status; unassigned (new) tickets are not in it.
        sa.Index("ix_tickets_assignee_status", "assignee_id", "status_rank", "created_at", "id",
                 postgresql_where=sa.text("assignee_id is not null")),
        sa.Index("ix_tickets_tags", "tags", postgresql_using="gin"),
        sa.Index("ix_tickets_search", "search_vector", postgresql_using="gin"),
        TENANT_SCHEMA,
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    # Default `nextval('ticket_number_seq')`, bound per schema by the migration; read back by RETURNING.
    number: Mapped[int] = mapped_column(sa.BigInteger, sa.FetchedValue(), unique=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    priority: Mapped[str] = mapped_column(sa.String(8), default="normal", server_default="normal")
    priority_rank: Mapped[int] = mapped_column(
        sa.SmallInteger,
        sa.Computed(
            "case priority when 'low' then 0 when 'normal' then 1 when 'high' then 2 else 3 end",
            persisted=True,
        ),
    )
    status: Mapped[str] = mapped_column(sa.String(10), default="new", server_default="new")
    # Lifecycle order, so `sort=status` reads new, open, pending, resolved, closed.
    status_rank: Mapped[int] = mapped_column(sa.SmallInteger, sa.Computed(STATUS_RANK_SQL, persisted=True))
    category: Mapped[str | None] = mapped_column(sa.String(100))
    tags: Mapped[list[str]] = mapped_column(ARRAY(sa.String(64)), default=list, server_default="{}")
    requester_id: Mapped[uuid.UUID | None] = fk("users.id")
    assignee_id: Mapped[uuid.UUID | None] = fk("users.id")
    team_id: Mapped[uuid.UUID | None] = fk("teams.id", ondelete="SET NULL")
    resolution: Mapped[str | None] = mapped_column(sa.Text)
    version: Mapped[int] = mapped_column(sa.Integer, default=1, server_default="1")
    last_message_seq: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
    first_response_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR, sa.Computed(SEARCH_VECTOR_SQL, persisted=True), deferred=True
    )

    # Server-made values (timestamps, ranks) come back in INSERT/UPDATE ... RETURNING, not a later SELECT.
    __mapper_args__ = {"version_id_col": version, "eager_defaults": True}


# The unassigned queue in the order assignment serves it (highest priority, then oldest), so a
# drain reads its next batch from the index instead of sorting every waiting ticket.
sa.Index(
    "ix_tickets_assignment_queue", Ticket.priority_rank.desc(), Ticket.created_at, Ticket.id,
    postgresql_where=sa.text("assignee_id is null and status = 'new'"),
)
