"""Migration t0002 on a schema that already has tickets: numbering carries on where the counter stopped."""

from __future__ import annotations

import secrets

import sqlalchemy as sa

from app.extensions import db
from tenants.migrations import tenant_ddl, upgrade_tenant


def test_upgrade_from_t0001_continues_the_numbers(app):
    schema = f"tenant_mig{secrets.token_hex(4)}"
    with app.app_context():
        engine = db.engine
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            conn.exec_driver_sql(f'SET LOCAL search_path TO "{schema}"')
            conn.exec_driver_sql(tenant_ddl("t0001"))
            conn.exec_driver_sql("INSERT INTO tickets (number, title) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
            conn.exec_driver_sql("UPDATE counters SET value = 3 WHERE name = 'ticket_number'")
        assert upgrade_tenant(engine, schema) is True
        with engine.begin() as conn:
            conn.exec_driver_sql(f'SET LOCAL search_path TO "{schema}"')
            number = conn.execute(sa.text("INSERT INTO tickets (title) VALUES ('d') RETURNING number")).scalar_one()
            ranks = conn.execute(sa.text("SELECT DISTINCT status_rank FROM tickets")).scalars().all()
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    assert number == 4
    assert ranks == [0]
