"""Drop what nothing uses, and let a replayed creating request carry its headers.

- `counters`: ticket numbers come from `ticket_number_seq` since t0002.
- `ix_tickets_unassigned`: `ix_tickets_assignment_queue` (t0003) serves the same queue in the
  order it is drained, so every write to tickets paid for two identical partial indexes.
- `idempotency_keys.response_headers`: a replay answers with the first response's ETag.

Revision ID: t0004
Revises: t0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "t0004"
down_revision = "t0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("counters")
    op.drop_index("ix_tickets_unassigned", table_name="tickets")
    op.add_column("idempotency_keys", sa.Column("response_headers", postgresql.JSONB(astext_type=sa.Text()),
                                                server_default="{}", nullable=False))


def downgrade() -> None:
    op.drop_column("idempotency_keys", "response_headers")
    op.create_index("ix_tickets_unassigned", "tickets", ["priority_rank", "created_at"], unique=False,
                    postgresql_where=sa.text("assignee_id is null and status = 'new'"))
    op.create_table(
        "counters",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_counters")),
    )
    op.execute("INSERT INTO counters (name, value) SELECT 'ticket_number', coalesce(max(number), 0) FROM tickets")
