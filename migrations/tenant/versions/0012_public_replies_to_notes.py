"""Public messages written as replies to an internal note become top-level messages.

Such a reply showed requesters the note's id as its `parent_id` (the messages list, the socket
catch-up). New ones are refused (`app.conversation`); the ones written before are cut loose from
the note here, so they read as threads of their own, as the ticket page already showed them to
requesters. The old parents are not kept, so the downgrade leaves the rows as they are.

Revision ID: t0012
Revises: t0011
Create Date: 2026-11-29
"""

from alembic import op

revision = "t0012"
down_revision = "t0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "UPDATE messages AS reply SET parent_id = NULL FROM messages AS parent "
        "WHERE reply.parent_id = parent.id AND parent.internal AND NOT reply.internal"
    )


def downgrade() -> None:
    """Leave the rows top-level: their old parents were not kept."""
