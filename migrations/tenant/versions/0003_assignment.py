"""Assignment: additions for rules, strategies and the unassigned queue.

Revision ID: t0003
Revises: t0002
Create Date: 2026-11-26
"""

revision = "t0003"
down_revision = "t0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
