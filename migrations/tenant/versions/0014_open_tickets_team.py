"""The open tickets' index carries each ticket's team, so the queues' counts read the index alone.

An agent's every page counts the open tickets of four queues (theirs, their teams', the
unassigned and all); the team was missing from `ix_tickets_open`, so the count read the table
(measured on a million tickets: a parallel scan of 86,000 pages, 160 to 650 ms a page view).

Revision ID: t0014
Revises: t0013
Create Date: 2026-11-29
"""

from alembic import op

revision = "t0014"
down_revision = "t0013"
branch_labels = None
depends_on = None

OPEN = "status in ('new', 'open', 'pending')"
LOCK_TIMEOUT = "10s"


def _replace(include: list[str]) -> None:
    """Build the new index beside the old one, then swap them.

    Building takes a lock that holds writes back but lets reads go on; only the drop and the
    rename need the table to themselves, for an instant, and they wait at most `LOCK_TIMEOUT`
    for it (behind a long export, say) rather than hold every reader back meanwhile: the
    migration of that tenant then fails, to be run again.
    """
    op.create_index("ix_tickets_open_next", "tickets", ["assignee_id", "status", "priority"], unique=False,
                    postgresql_include=include, postgresql_where=OPEN)
    op.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    op.drop_index("ix_tickets_open", table_name="tickets")
    op.execute("ALTER INDEX ix_tickets_open_next RENAME TO ix_tickets_open")


def upgrade() -> None:
    _replace(["team_id"])


def downgrade() -> None:
    _replace([])
