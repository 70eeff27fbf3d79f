"""Registry: the shard (database) each tenant's schema lives in, and its transaction id offset.

Every existing tenant is on the primary database, which is what the default says, and has never
moved, so its offset is 0 (see `tenants.moves`).

Revision ID: p0004
Revises: p0003
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "p0004"
down_revision = "p0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tenants", sa.Column("shard", sa.String(length=32), server_default="primary", nullable=False),
                  schema="public")
    op.create_check_constraint("ck_tenants_shard_format", "tenants", "shard ~ '^[a-z][a-z0-9_]{0,31}$'",
                               schema="public")
    op.create_index("ix_tenants_shard", "tenants", ["shard"], schema="public")
    op.add_column("tenants", sa.Column("txid_offset", sa.BigInteger(), server_default="0", nullable=False),
                  schema="public")


def downgrade() -> None:
    op.drop_column("tenants", "txid_offset", schema="public")
    op.drop_index("ix_tenants_shard", table_name="tenants", schema="public")
    op.drop_constraint("ck_tenants_shard_format", "tenants", schema="public")
    op.drop_column("tenants", "shard", schema="public")
