"""Alembic environment for the `tenant` track: one run per tenant schema.

Online, the tenant's schema is alone on the search_path for the migration's transaction, and its
`alembic_version` lives in that schema. Offline (`sql=True`), the head DDL is rendered without
any schema name, for provisioning to run under the same search_path.
"""

from alembic import context
from sqlalchemy import text

from tenants.names import checked_schema

config = context.config

if context.is_offline_mode():
    context.configure(
        dialect_name="postgresql",
        literal_binds=True,
        output_buffer=config.attributes["output_buffer"],
        transactional_ddl=False,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes["connection"]
    schema = checked_schema(config.attributes["schema"])  # written into SQL below
    connection.execute(text(f'SET LOCAL search_path TO "{schema}"'))
    context.configure(connection=connection, version_table_schema=schema)
    with context.begin_transaction():
        context.run_migrations()
