"""Tickets: additions for listing, search, export and idempotency.

Revision ID: t0002
Revises: t0001
Create Date: 2026-11-26
"""

revision = "t0002"
down_revision = "t0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
