"""Batched outbox handling: one failing ticket never holds back the others, and is retried; a job
running dry never leaves behind a row the relay was handing to it."""

import threading
import time
import uuid
from datetime import timedelta

import sqlalchemy as sa

from app.assignment import services as assignment_services
from app.extensions import redis_client
from app.outbox.dispatch import relay_tenant, wake_key
from app.outbox.models import Event, OutboxRow
from app.worker import run_outbox_row, use_app
from tenants import schema_for
from tests.helpers import wait_until


def test_a_failing_ticket_does_not_block_its_batch(app, desk, run_jobs, in_tenant, monkeypatch):
    agents = desk.agents(2)
    desk.rule(desk.team("T", agents), "round_robin")
    run_jobs()
    tickets = [desk.ticket(f"t{i}") for i in range(6)]
    poison = uuid.UUID(tickets[0]["id"])  # the row whose job leads the batch
    real = assignment_services.assign_new_tickets

    def flaky(ticket_ids):
        if poison in ticket_ids:
            raise RuntimeError("poison ticket")
        return real(ticket_ids)

    monkeypatch.setattr(assignment_services, "assign_new_tickets", flaky)
    run_jobs()
    got = [desk.get(t)["assignee_id"] for t in tickets]
    assert got[0] is None and all(got[1:])
    with in_tenant(desk.t) as session:
        row = session.execute(sa.select(OutboxRow).join(Event, Event.id == OutboxRow.event_id).where(
            Event.type == "ticket.created", Event.payload["ticket_id"].astext == str(poison))
        ).scalar_one()
        assert row.processed_at is None and row.attempts == 1 and "poison ticket" in row.last_error
        # RQ retries the job in a second: till then the relay starts no second chain of retries beside it
        assert row.enqueued_at - row.created_at >= timedelta(seconds=1)

    monkeypatch.setattr(assignment_services, "assign_new_tickets", real)
    monkeypatch.setitem(app.config, "OUTBOX_REDELIVER_AFTER", 0)

    def relayed() -> bool:  # RQ's retry is not run in a burst, so the relay hands the row on once it is due
        with in_tenant(desk.t):
            return relay_tenant(desk.t.slug) == 1

    wait_until(relayed, "the relay to hand on the row once its retry is overdue", timeout=30)
    run_jobs()
    assert desk.get(tickets[0])["assignee_id"] is not None


def test_a_job_running_dry_claims_a_row_the_relay_holds_for_it(app, services, desk, run_jobs, in_tenant):
    """The relay woke by a new ticket finds the handler's wake mark still set (a job is running),
    so it leaves the row to that job, holding the row locked meanwhile. The job, running dry at
    that moment, clears the mark and claims once more: that claim must wait for the relay's lock,
    or the ticket waits for some later wake or the sweep."""
    desk.rule(desk.team("T", desk.agents(1)), "round_robin")
    run_jobs()
    ticket = desk.ticket("Held by the relay")
    with in_tenant(desk.t) as session:
        row_id = session.execute(sa.select(OutboxRow.id).join(Event, Event.id == OutboxRow.event_id).where(
            Event.type == "ticket.created", Event.payload["ticket_id"].astext == ticket["id"])).scalar_one()
        handler = session.get(OutboxRow, row_id).handler
    with app.app_context():
        redis_client().set(wake_key(desk.t.slug, handler), 1)  # the running job's mark
    engine = sa.create_engine(services.database_url, pool_size=1)
    relay = engine.connect()
    relay.execute(sa.text(f'select id from "{schema_for(desk.t.slug)}".outbox where id = :id for update'),
                  {"id": row_id})

    def hand_over() -> None:
        time.sleep(0.5)  # the relay finds the mark set, so leaves the row and ends its transaction
        relay.rollback()

    releaser = threading.Thread(target=hand_over)
    releaser.start()
    try:
        use_app(app)
        run_outbox_row(desk.t.slug, row_id)
    finally:
        releaser.join()
        relay.close()
        engine.dispose()
    assert desk.get(ticket)["assignee_id"] is not None
    with in_tenant(desk.t) as session:
        assert session.get(OutboxRow, row_id).processed_at is not None
