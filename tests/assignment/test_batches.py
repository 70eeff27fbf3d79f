"""Batched outbox handling: one failing ticket never holds back the others, and is retried."""

import uuid

import sqlalchemy as sa

from app.assignment import services
from app.outbox.dispatch import relay_tenant
from app.outbox.models import Event, OutboxRow


def test_a_failing_ticket_does_not_block_its_batch(app, desk, run_jobs, in_tenant, monkeypatch):
    agents = desk.agents(2)
    desk.rule(desk.team("T", agents), "round_robin")
    run_jobs()
    tickets = [desk.ticket(f"t{i}") for i in range(6)]
    poison = uuid.UUID(tickets[0]["id"])  # the row whose job leads the batch
    real = services.assign_new_tickets

    def flaky(ticket_ids):
        if poison in ticket_ids:
            raise RuntimeError("poison ticket")
        return real(ticket_ids)

    monkeypatch.setattr(services, "assign_new_tickets", flaky)
    run_jobs()
    got = [desk.get(t)["assignee_id"] for t in tickets]
    assert got[0] is None and all(got[1:])
    with in_tenant(desk.t) as session:
        row = session.execute(sa.select(OutboxRow).join(Event, Event.id == OutboxRow.event_id).where(
            Event.type == "ticket.created", Event.payload["ticket_id"].astext == str(poison))
        ).scalar_one()
        assert row.processed_at is None and row.attempts == 1 and "poison ticket" in row.last_error

    monkeypatch.setattr(services, "assign_new_tickets", real)
    monkeypatch.setitem(app.config, "OUTBOX_REDELIVER_AFTER", 0)
    with in_tenant(desk.t):
        assert relay_tenant(desk.t.slug) == 1
    run_jobs()
    assert desk.get(tickets[0])["assignee_id"] is not None
