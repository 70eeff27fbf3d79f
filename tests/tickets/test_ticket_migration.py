"""Migration t0002 on a schema that already has tickets: numbering carries on where the counter stopped."""

from __future__ import annotations

import sqlalchemy as sa

from tenants.migrations import upgrade_tenant
from tests.helpers import in_schema, tenant_schema_at


def test_upgrade_from_t0001_continues_the_numbers(app):
    with tenant_schema_at(app, "t0001") as (engine, schema):
        with in_schema(engine, schema) as conn:
            conn.exec_driver_sql("INSERT INTO tickets (number, title) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
            conn.exec_driver_sql("UPDATE counters SET value = 3 WHERE name = 'ticket_number'")
        assert upgrade_tenant(engine, schema) is True
        with in_schema(engine, schema) as conn:
            number = conn.execute(sa.text("INSERT INTO tickets (title) VALUES ('d') RETURNING number")).scalar_one()
            ranks = conn.execute(sa.text("SELECT DISTINCT status_rank FROM tickets")).scalars().all()
    assert number == 4
    assert ranks == [0]
