"""Conversation: additions for messages and live streams.

Revision ID: t0004
Revises: t0003
Create Date: 2026-11-26
"""

revision = "t0004"
down_revision = "t0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
