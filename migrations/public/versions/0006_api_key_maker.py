"""API keys: who made a key and with which key, so a key made for someone else ends when its maker leaves or
stops being an admin, and a revoked key takes the keys made with it along.

Revision ID: p0006
Revises: p0005
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "p0006"
down_revision = "p0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("created_by", UUID(as_uuid=True), nullable=True), schema="public")
    op.add_column("api_keys", sa.Column("made_with", UUID(as_uuid=True), nullable=True), schema="public")
    op.create_index("ix_api_keys_created_by", "api_keys", ["tenant_id", "created_by"], schema="public",
                    postgresql_where=sa.text("created_by is not null and revoked_at is null"))
    op.create_index("ix_api_keys_made_with", "api_keys", ["made_with"], schema="public",
                    postgresql_where=sa.text("made_with is not null and revoked_at is null"))


def downgrade() -> None:
    op.drop_index("ix_api_keys_made_with", table_name="api_keys", schema="public")
    op.drop_index("ix_api_keys_created_by", table_name="api_keys", schema="public")
    op.drop_column("api_keys", "made_with", schema="public")
    op.drop_column("api_keys", "created_by", schema="public")
