"""Conversation: no schema change.

The messages table, its unique (ticket_id, seq) index that serves catch-up by seq, the parent
index, and tickets.last_message_seq / first_response_at all come with t0001. This revision stays
as the conversation area's slot in the chain, so later changes land here without renumbering.

Revision ID: t0004
Revises: t0003
Create Date: 2026-11-26
"""

revision = "t0004"
down_revision = "t0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
