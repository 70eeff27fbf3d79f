"""Tickets with a category are indexed by it and their creation, so a list filtered by category
(`?category=`) reads its page from the index instead of walking every ticket by date: a category
with no recent tickets, or none at all, read the whole table.

Tickets without a category are not in it, so most creates write no entry.

Revision ID: t0018
Revises: t0017
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "t0018"
down_revision = "t0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tickets_category_created", "tickets", ["category", "created_at", "id"], unique=False,
                    postgresql_where=sa.text("category IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_tickets_category_created", table_name="tickets")
