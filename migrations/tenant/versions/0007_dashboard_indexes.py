"""Indexes for the dashboard's figures at a million tickets, and the audit log by actor.

`ix_tickets_open` (open tickets only: assignee, status, priority) serves each agent's load and
the backlog from the index alone, and replaces `ix_tickets_assignee_status`, which indexed
closed tickets for nothing. Closed per day, resolution and first-response percentiles each get
a partial index carrying the timestamp they subtract; decisions per rule an index on time.
Measured on 1,000,000 tickets (60% open): the overview's queries went from about 2 s to about
0.3 s in all.

Revision ID: t0007
Revises: t0006
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "t0007"
down_revision = "t0006"
branch_labels = None
depends_on = None

OPEN = sa.text("status in ('new', 'open', 'pending')")


def upgrade() -> None:
    op.create_index("ix_tickets_open", "tickets", ["assignee_id", "status", "priority"], unique=False,
                    postgresql_where=OPEN)
    op.drop_index("ix_tickets_assignee_status", table_name="tickets")
    op.create_index("ix_tickets_closed_at", "tickets", ["closed_at"], unique=False,
                    postgresql_where=sa.text("closed_at is not null"))
    op.create_index("ix_tickets_resolved_at", "tickets", ["resolved_at"], unique=False,
                    postgresql_include=["created_at"], postgresql_where=sa.text("resolved_at is not null"))
    op.create_index("ix_tickets_first_response", "tickets", ["created_at"], unique=False,
                    postgresql_include=["first_response_at"],
                    postgresql_where=sa.text("first_response_at is not null"))
    op.create_index("ix_assignment_decisions_created", "assignment_decisions", ["created_at"], unique=False)
    op.create_index("ix_audit_log_actor", "audit_log", ["actor_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.drop_index("ix_assignment_decisions_created", table_name="assignment_decisions")
    op.drop_index("ix_tickets_first_response", table_name="tickets")
    op.drop_index("ix_tickets_resolved_at", table_name="tickets")
    op.drop_index("ix_tickets_closed_at", table_name="tickets")
    op.create_index("ix_tickets_assignee_status", "tickets", ["assignee_id", "status"], unique=False)
    op.drop_index("ix_tickets_open", table_name="tickets")
