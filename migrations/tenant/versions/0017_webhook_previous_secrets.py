"""Webhooks keep every earlier secret still in its grace period (`previous_secrets`), so rotating
twice no longer ends the first rotation's grace at the second: only the last earlier secret was
kept, and a receiver still holding the first was refused.

Revision ID: t0017
Revises: t0016
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "t0017"
down_revision = "t0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webhook_subscriptions", sa.Column("previous_secrets", JSONB, nullable=False,
                                                     server_default=sa.text("'[]'::jsonb")))
    op.execute("UPDATE webhook_subscriptions SET previous_secrets = jsonb_build_array(jsonb_build_object("
               "'secret', previous_secret, 'expires_at', previous_secret_expires_at)) "
               "WHERE previous_secret IS NOT NULL AND previous_secret_expires_at > now()")
    op.drop_column("webhook_subscriptions", "previous_secret")
    op.drop_column("webhook_subscriptions", "previous_secret_expires_at")


def downgrade() -> None:
    op.add_column("webhook_subscriptions", sa.Column("previous_secret", sa.String(256), nullable=True))
    op.add_column("webhook_subscriptions", sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True),
                                                     nullable=True))
    op.execute("UPDATE webhook_subscriptions SET previous_secret = previous_secrets -> 0 ->> 'secret', "
               "previous_secret_expires_at = (previous_secrets -> 0 ->> 'expires_at')::timestamptz "
               "WHERE jsonb_array_length(previous_secrets) > 0")
    op.drop_column("webhook_subscriptions", "previous_secrets")
