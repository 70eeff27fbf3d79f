"""Tenants: a `dropping` status, for a tenant whose drop has begun. It answers nothing, as a suspended
one does, but unlike one it cannot be reactivated: its files may be deleted already.

Revision ID: p0007
Revises: p0006
Create Date: 2026-11-30
"""

from alembic import op

revision = "p0007"
down_revision = "p0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("ck_tenants_status", "tenants", schema="public", type_="check")
    op.create_check_constraint(op.f("ck_tenants_status"), "tenants", "status in ('active', 'suspended', 'dropping')",
                                schema="public")


def downgrade() -> None:
    op.execute("UPDATE public.tenants SET status = 'suspended' WHERE status = 'dropping'")
    op.drop_constraint("ck_tenants_status", "tenants", schema="public", type_="check")
    op.create_check_constraint(op.f("ck_tenants_status"), "tenants", "status in ('active', 'suspended')",
                                schema="public")
