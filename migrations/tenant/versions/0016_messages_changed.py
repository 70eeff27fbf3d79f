"""Messages edited or deleted are indexed by ticket and the time of that change, so a socket's
periodic resync finds a ticket's recent changes without reading every message of the ticket
(2,000 sockets on busy tickets emptied the connection pool with that read).

Only changed messages are in it: most are never edited, so it stays small.

Revision ID: t0016
Revises: t0015
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "t0016"
down_revision = "t0015"
branch_labels = None
depends_on = None

CHANGED = "coalesce(deleted_at, edited_at)"


def upgrade() -> None:
    op.create_index("ix_messages_changed", "messages", ["ticket_id", sa.text(CHANGED)], unique=False,
                    postgresql_where=sa.text(f"{CHANGED} IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_messages_changed", table_name="messages")
