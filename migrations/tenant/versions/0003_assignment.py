"""Assignment: an index serving the unassigned queue in priority, then age, order.

Revision ID: t0003
Revises: t0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "t0003"
down_revision = "t0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_tickets_assignment_queue",
        "tickets",
        [sa.text("priority_rank DESC"), "created_at", "id"],
        unique=False,
        postgresql_where=sa.text("assignee_id is null and status = 'new'"),
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_assignment_queue", table_name="tickets")
