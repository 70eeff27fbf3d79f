"""Outbox rows record when they were given up (`OUTBOX_MAX_ATTEMPTS` failed runs), so the relay
stops handing a row that can never succeed to RQ, where it ran about 17,000 times a day.

Revision ID: t0015
Revises: t0014
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "t0015"
down_revision = "t0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("given_up_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "given_up_at")
