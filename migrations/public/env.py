"""Alembic environment for the `public` track (tenant registry, API-key index)."""

from alembic import context

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise SystemExit(
        "run migrations through `flask tenants migrate` or `flask db-upgrade`"
    )
context.configure(connection=connection, version_table_schema="public")
with context.begin_transaction():
    context.run_migrations()
