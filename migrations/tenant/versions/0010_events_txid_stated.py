"""Every writer states an event's `txid`; the column no longer defaults to the raw transaction id.

The event feed orders by `txid` with the tenant's offset added (a move to another shard raises
the offset, so cursors continue past the new database's lower transaction ids). The default
left the offset out, so an insert that relied on it after a move would have written below the
feed's position and its event would never be served. Without a default such an insert fails.

Revision ID: t0010
Revises: t0009
Create Date: 2026-12-08
"""

from alembic import op

revision = "t0010"
down_revision = "t0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("events", "txid", server_default=None)


def downgrade() -> None:
    op.execute("ALTER TABLE events ALTER COLUMN txid SET DEFAULT (pg_current_xact_id()::text::bigint)")
