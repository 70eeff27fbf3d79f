"""Signups' Idempotency-Keys: the sealed 201 to replay for 24 hours.

Revision ID: p0005
Revises: p0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "p0005"
down_revision = "p0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signup_idempotency_keys",
        sa.Column("key", sa.String(80), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema="public",
    )
    op.create_index("ix_signup_idempotency_keys_created", "signup_idempotency_keys", ["created_at"], schema="public")


def downgrade() -> None:
    op.drop_table("signup_idempotency_keys", schema="public")
