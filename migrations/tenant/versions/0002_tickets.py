"""Tickets: numbers from a per-schema sequence, lifecycle sort order, and the list indexes.

Numbers come from `ticket_number_seq` (the column default) instead of the locked counter row:
the row lock was held through each commit's WAL flush, so creates in one tenant committed one
at a time (about 100/s on a durable disk). A sequence never hands out a number twice and, as
validation happens before the INSERT, leaves a gap only if the INSERT's transaction then fails.

Revision ID: t0002
Revises: t0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "t0002"
down_revision = "t0001"
branch_labels = None
depends_on = None

STATUS_RANK_SQL = (
    "case status when 'new' then 0 when 'open' then 1 when 'pending' then 2 when 'resolved' then 3 else 4 end"
)


def upgrade() -> None:
    op.execute("CREATE SEQUENCE ticket_number_seq AS bigint START WITH 1 OWNED BY tickets.number")
    # Carry on from the highest number already given (the counter's value).
    op.execute("SELECT setval('ticket_number_seq', coalesce(max(number), 0) + 1, false) FROM tickets")
    op.execute("ALTER TABLE tickets ALTER COLUMN number SET DEFAULT nextval('ticket_number_seq')")
    op.add_column(
        "tickets",
        sa.Column("status_rank", sa.SmallInteger(), sa.Computed(STATUS_RANK_SQL, persisted=True), nullable=False),
    )
    op.create_index("ix_tickets_priority_created", "tickets", ["priority_rank", "created_at", "id"], unique=False)
    op.create_index("ix_tickets_status_rank_created", "tickets", ["status_rank", "created_at", "id"], unique=False)
    op.create_index("ix_tickets_team_created", "tickets", ["team_id", "created_at", "id"], unique=False)
    op.create_index("ix_tickets_assignee_created", "tickets", ["assignee_id", "created_at", "id"], unique=False)
    op.create_index("ix_tickets_assignee_updated", "tickets", ["assignee_id", "updated_at", "id"], unique=False)
    # Both are prefixes of the wider indexes above, so they only slowed writes.
    op.drop_index("ix_tickets_team", table_name="tickets")
    op.drop_index("ix_tickets_priority_rank", table_name="tickets")


def downgrade() -> None:
    op.create_index("ix_tickets_priority_rank", "tickets", ["priority_rank", "id"], unique=False)
    op.create_index("ix_tickets_team", "tickets", ["team_id", "created_at"], unique=False)
    op.drop_index("ix_tickets_assignee_updated", table_name="tickets")
    op.drop_index("ix_tickets_assignee_created", table_name="tickets")
    op.drop_index("ix_tickets_team_created", table_name="tickets")
    op.drop_index("ix_tickets_status_rank_created", table_name="tickets")
    op.drop_index("ix_tickets_priority_created", table_name="tickets")
    op.drop_column("tickets", "status_rank")
    op.execute("UPDATE counters SET value = (SELECT coalesce(max(number), 0) FROM tickets) "
               "WHERE name = 'ticket_number'")
    op.execute("ALTER TABLE tickets ALTER COLUMN number DROP DEFAULT")
    op.execute("DROP SEQUENCE ticket_number_seq")
