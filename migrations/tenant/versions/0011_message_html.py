"""Messages keep the HTML their Markdown rendered to when written (`body_html`).

Rendering costs about 10 µs per markup token in pure Python, so a 64 KiB message dense with
list items, table rows or brackets took half a second, and a ticket page or a list of 50 such
messages rendered them all on every read. Now a message is rendered once, when it is posted or
edited. Rows written before stay NULL and are rendered when read, as before.

Revision ID: t0011
Revises: t0010
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "t0011"
down_revision = "t0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("body_html", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "body_html")
