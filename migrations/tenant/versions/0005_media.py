"""Media: attachments of the conversation, and each tenant's media settings and storage use.

The settings table holds exactly one row, made here (and so by provisioning, which runs this
DDL), so an upload only ever updates it under its row lock.

Revision ID: t0005
Revises: t0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "t0005"
down_revision = "t0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attachments",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("ticket_id", sa.UUID(), nullable=False),
        sa.Column("message_id", sa.UUID(), nullable=True),
        sa.Column("uploader_id", sa.UUID(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("declared_type", sa.String(length=255), nullable=True),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("internal", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("status", sa.String(length=12), server_default="pending", nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("antivirus", sa.String(length=20), nullable=True),
        sa.Column("reencoded", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("has_thumbnail", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("scan_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("size >= 0", name=op.f("ck_attachments_size")),
        sa.CheckConstraint("status in ('pending', 'clean', 'rejected', 'infected', 'scan_failed')",
                           name=op.f("ck_attachments_status")),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], name=op.f("fk_attachments_message_id_messages"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_attachments_ticket_id_tickets"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["uploader_id"], ["users.id"], name=op.f("fk_attachments_uploader_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    op.create_index("ix_attachments_message", "attachments", ["message_id"], unique=False)
    op.create_index("ix_attachments_ticket", "attachments", ["ticket_id", "created_at"], unique=False)
    op.create_table(
        "media_settings",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("allowed_types", postgresql.ARRAY(sa.String(length=100)), nullable=True),
        sa.Column("max_size", sa.BigInteger(), nullable=True),
        sa.Column("quota_bytes", sa.BigInteger(), nullable=True),
        sa.Column("used_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_media_settings_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_settings")),
    )
    op.execute("INSERT INTO media_settings (id) VALUES (1)")


def downgrade() -> None:
    op.drop_table("media_settings")
    op.drop_index("ix_attachments_ticket", table_name="attachments")
    op.drop_index("ix_attachments_message", table_name="attachments")
    op.drop_table("attachments")
