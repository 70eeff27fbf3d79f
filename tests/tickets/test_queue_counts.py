"""The queues' counts, shown on every agent's page, are read from the open tickets' index alone."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from app.auth.actor import Actor
from app.tickets.queues import QUEUES, counts_select, queue_counts
from tenants import compile_for_tenant
from tests.helpers import Desk, index_plan


def test_the_counts_are_right_and_read_from_the_open_tickets_index_alone(tenant, in_tenant):
    agent = tenant.user("agent")
    team = Desk(tenant).team("Desk", [agent])
    tickets = [tenant.api.post("/api/v1/tickets", json={"title": f"t{n}"}).get_json() for n in range(4)]
    tenant.api.patch(f"/api/v1/tickets/{tickets[0]['id']}", json={"assignee_id": agent["id"], "status": "open"})
    tenant.api.patch(f"/api/v1/tickets/{tickets[1]['id']}", json={"team_id": team["id"]})
    tenant.api.post(f"/api/v1/tickets/{tickets[3]['id']}/close")
    actor = Actor(user_id=uuid.UUID(agent["id"]), role="agent")
    with in_tenant(tenant) as session:
        counts = queue_counts(actor)
        plan = index_plan(session, *compile_for_tenant(counts_select(actor)))
    assert set(counts) == set(QUEUES)
    assert (counts["mine"], counts["team"], counts["unassigned"], counts["open"]) == (1, 1, 2, 3)
    assert "Index Only Scan using ix_tickets_open" in plan, plan


def _open_index(engine, schema: str) -> list[str]:
    with engine.begin() as conn:
        return list(conn.execute(sa.text("SELECT indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = :s "
                                         "AND indexname LIKE 'ix_tickets_open%'"), {"s": schema}).scalars())


def test_migration_t0014_swaps_the_index_both_ways(app):
    from alembic import command

    from tenants.migrations import alembic_config, upgrade_tenant
    from tests.helpers import tenant_schema_at

    with tenant_schema_at(app, "t0013") as (engine, schema):
        [before] = _open_index(engine, schema)
        assert "INCLUDE" not in before
        assert upgrade_tenant(engine, schema) is True
        assert _open_index(engine, schema) == [before.replace(" WHERE", " INCLUDE (team_id) WHERE", 1)]
        with engine.begin() as conn:
            command.downgrade(alembic_config("tenant", connection=conn, schema=schema), "t0013")
        assert _open_index(engine, schema) == [before]
