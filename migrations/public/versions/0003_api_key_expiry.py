"""API keys: an expiry, for rotation with a grace period.

Revision ID: p0003
Revises: p0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "p0003"
down_revision = "p0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True), schema="public")


def downgrade() -> None:
    op.drop_column("api_keys", "expires_at", schema="public")
