"""Idempotency keys keep the first response's bytes, so a replay is byte for byte the first answer.

A JSONB copy re-serialised on replay could differ in key order and spacing. Keys stored before
this revision keep their JSON's text as their bytes.

Revision ID: t0008
Revises: t0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "t0008"
down_revision = "t0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("response", sa.LargeBinary(), server_default=sa.text("''::bytea"),
                                                nullable=False))
    op.execute("UPDATE idempotency_keys SET response = convert_to(response_body::text, 'UTF8')")
    op.drop_column("idempotency_keys", "response_body")


def downgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("response_body", sa.dialects.postgresql.JSONB(),
                                                server_default=sa.text("'{}'::jsonb"), nullable=False))
    op.execute("UPDATE idempotency_keys SET response_body = convert_from(response, 'UTF8')::jsonb "
               "WHERE length(response) > 0")
    op.drop_column("idempotency_keys", "response")
