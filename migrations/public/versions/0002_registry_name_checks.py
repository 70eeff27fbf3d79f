"""Registry: CHECK constraints on tenant slugs and schema names.

A slug must match the slug rule, a schema name the schema rule, and the schema must be the
slug's own (`tenant_` + slug with hyphens as underscores). Rows that break a rule are reported
(logged, with their ids) and the constraint is then added `NOT VALID`: new and changed rows are
checked at once, and the reported rows wait for an operator instead of blocking the upgrade.

Revision ID: p0002
Revises: p0001
Create Date: 2026-11-28
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "p0002"
down_revision = "p0001"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
CHECKS = {
    "ck_tenants_slug_format": "slug ~ '^[a-z][a-z0-9-]{1,39}$'",
    "ck_tenants_schema_name_format": "schema_name ~ '^tenant_[a-z][a-z0-9_]{1,55}$'",
    "ck_tenants_schema_name_of_slug": "schema_name = 'tenant_' || replace(slug, '-', '_')",
}


def upgrade() -> None:
    conn = op.get_bind()
    for name, condition in CHECKS.items():
        broken = conn.execute(sa.text(
            f"select id, slug, schema_name from public.tenants where not ({condition})")).all()
        for row in broken:
            log.warning("tenant %s breaks %s: slug=%r schema=%r", row.id, name, row.slug, row.schema_name)
        suffix = " NOT VALID" if broken else ""
        conn.execute(sa.text(f"alter table public.tenants add constraint {name} check ({condition}){suffix}"))


def downgrade() -> None:
    for name in CHECKS:
        op.drop_constraint(name, "tenants", schema="public")
