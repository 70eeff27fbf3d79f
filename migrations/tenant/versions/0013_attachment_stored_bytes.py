"""Attachments record what their stored objects take of the quota, so deleting one gives it back.

A clean image's re-encoded copy and thumbnail replace its upload in the quota, and `size` is the
copy's alone. Rows from before count their `size` (nothing for a refused file, whose objects are
gone); an image cleaned before this revision keeps its thumbnail's few KiB in the quota's use
after it is deleted, as its thumbnail's size was never recorded.

Revision ID: t0013
Revises: t0012
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "t0013"
down_revision = "t0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("attachments", sa.Column("stored_bytes", sa.BigInteger(), server_default="0", nullable=False))
    op.execute("UPDATE attachments SET stored_bytes = size "
               "WHERE status NOT IN ('rejected', 'infected', 'scan_failed')")
    op.create_check_constraint(op.f("ck_attachments_stored_bytes"), "attachments", "stored_bytes >= 0")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_attachments_stored_bytes"), "attachments", type_="check")
    op.drop_column("attachments", "stored_bytes")
