"""The outbox relay hands overdue rows to RQ, visiting only tenants that have some."""

import threading

import pytest
import sqlalchemy as sa
from rq import Queue

from app import create_app
from app.extensions import db, redis_client
from app.outbox.dispatch import relay_once
from tenants import schema_for
from tests.helpers import ApiClient, app_config, wait_until


def _age_outbox(schema: str) -> None:
    db.session.execute(sa.text(f'update "{schema}".outbox set created_at = now() - interval \'1 hour\''))
    db.session.commit()


def test_relay_enqueues_rows_the_fast_path_missed_and_survives_a_damaged_tenant(services, make_tenant):
    app = create_app(app_config(services, OUTBOX_FAST_PATH=False))
    healthy, damaged, idle = make_tenant(), make_tenant(), make_tenant()
    for handle in (healthy, damaged):
        resp = ApiClient(app.test_client(), handle.key).post("/api/v1/tickets", json={"title": "waiting"})
        assert resp.status_code == 201
    with app.app_context():
        queue = Queue("assignment", connection=redis_client())
        queue.empty()
        # A row for a handler this process does not know must not stop the sweep.
        db.session.execute(sa.text(f'with e as (insert into "tenant_{healthy.slug}".events (type, payload, txid) '
                                   "values ('x', '{}', pg_current_xact_id()::text::bigint) returning id) "
                                   f'insert into "tenant_{healthy.slug}".outbox (event_id, handler) '
                                   "select id, 'removed.handler' from e"))
        for handle in (healthy, damaged):
            _age_outbox(f"tenant_{handle.slug}")
        db.session.execute(sa.text(f'drop table "tenant_{damaged.slug}".outbox'))
        db.session.commit()
        assert relay_once() >= 1
        slugs = {job.args[0] for job in queue.get_jobs()}
        assert healthy.slug in slugs and damaged.slug not in slugs
        enqueued = db.session.execute(sa.text(
            f'select count(*) from "tenant_{healthy.slug}".outbox where enqueued_at is not null')).scalar()
        assert enqueued == 1
        # Just enqueued, so not overdue again until OUTBOX_REDELIVER_AFTER has passed.
        queue.empty()
        relay_once()
        slugs = {job.args[0] for job in queue.get_jobs()}
        assert healthy.slug not in slugs and idle.slug not in slugs
        queue.empty()


def test_a_wake_is_handed_on_while_a_sweep_is_under_way(app, tenant, monkeypatch, in_tenant):
    """The sweep probes every schema (seconds, with thousands of tenants); wakes must not wait behind it."""
    from app.outbox import dispatch

    sweeping, release, swept, listening, stop = (threading.Event() for _ in range(5))
    real_relay, real_listen = dispatch.relay_once, dispatch._listen_on

    def slow_sweep(fresh: bool = False, slugs: set[str] | None = None) -> int:
        if fresh:
            return real_relay(fresh=True, slugs=slugs)
        sweeping.set()
        release.wait(30)
        swept.set()
        return 0

    def noted_listen(engine):
        listener = real_listen(engine)
        listening.set()
        return listener

    monkeypatch.setattr(dispatch, "relay_once", slow_sweep)
    monkeypatch.setattr(dispatch, "_listen_on", noted_listen)

    def run() -> None:
        with app.app_context():
            dispatch.relay_forever(interval=0.2, stop=stop)

    relay = threading.Thread(target=run)
    relay.start()
    try:
        assert sweeping.wait(10) and listening.wait(10)
        ticket = tenant.api.post("/api/v1/tickets", json={"title": "woken mid-sweep"}).get_json()

        schema = schema_for(tenant.slug)

        def handed_on() -> bool:
            with in_tenant(tenant) as session:
                return session.execute(sa.text(
                    f'select bool_and(o.enqueued_at is not null) from "{schema}".outbox o '
                    f'join "{schema}".events e on e.id = o.event_id where e.payload ->> \'ticket_id\' = :id'),
                    {"id": ticket["id"]}).scalar() is True

        wait_until(handed_on, "the woken ticket's outbox rows handed on mid-sweep", timeout=10)
        assert not swept.is_set()  # the sweep was still under way
    finally:
        release.set()
        stop.set()
        relay.join(10)
    assert not relay.is_alive()


def test_the_relay_stops_when_its_sweep_dies(app, monkeypatch):
    """A sweep thread that failed leaves no relay that only half works: the relay stops, for a restart."""
    from app.outbox import dispatch

    def broken(fresh: bool = False, slugs: set[str] | None = None) -> int:
        raise ValueError("a bug in a sweep")

    monkeypatch.setattr(dispatch, "relay_once", broken)
    monkeypatch.setattr(threading, "excepthook", lambda _args: None)  # the failure is expected here
    with app.app_context(), pytest.raises(RuntimeError, match="sweep stopped"):
        dispatch.relay_forever(interval=0.2)


def test_an_event_written_without_its_txid_is_refused(tenant, in_tenant):
    """`txid` carries the tenant's offset after a move; a default would leave it out, so there is none."""
    with in_tenant(tenant) as session, pytest.raises(sa.exc.IntegrityError, match="txid"):
        session.execute(sa.text(f'insert into "{schema_for(tenant.slug)}".events (type, payload) '
                                "values ('ticket.updated', '{}')"))


def test_a_chore_runs_in_every_tenant_and_one_tenants_failure_stops_no_other(app, make_tenant):
    from app.outbox.dispatch import Chore, run_chore
    from tenants import current_tenant

    broken, *fine = make_tenant(), make_tenant(), make_tenant()
    seen: list[str] = []

    def chore() -> int:
        if current_tenant().slug == broken.slug:
            raise RuntimeError("its storage is down")
        seen.append(current_tenant().slug)
        return 1

    with app.app_context():
        assert run_chore(Chore("test chore", lambda: 1.0, chore)) >= 2
    assert {t.slug for t in fine} <= set(seen) and broken.slug not in seen


def test_a_job_that_starts_while_the_relay_still_holds_its_row_runs_it(app, tenant, monkeypatch):
    """A job dequeued before the relay committed its hand-over skipped the locked row: the row stayed
    undone, with no job anywhere, until the relay's next redelivery (30 s)."""
    import threading
    import time
    import uuid

    import psycopg
    import sqlalchemy as sa

    from app.extensions import db
    from app.outbox import dispatch, emit
    from app.outbox.models import OutboxRow
    from app.worker import run_outbox_row, use_app
    from tenants import active_tenant, tenant_context

    monkeypatch.setitem(app.config, "OUTBOX_FAST_PATH", False)
    use_app(app)
    with app.app_context():
        ref = active_tenant(tenant.slug).ref()
        db.session.rollback()
        with tenant_context(ref):
            emit("attachment.deleted", {"attachment_id": str(uuid.uuid4())})  # a handler of one row at a time
            db.session.commit()
            row_id = db.session.execute(sa.select(sa.func.max(OutboxRow.id))).scalar_one()
            db.session.execute(sa.update(OutboxRow).where(OutboxRow.id == row_id)
                               .values(created_at=sa.func.now() - sa.text("interval '1 minute'")))
            db.session.commit()
    results, workers, real = [], [], dispatch.enqueue_rows

    def enqueued_and_taken_at_once(slug, rows, coalesce=True):
        sent = real(slug, rows, coalesce)
        worker = threading.Thread(target=lambda: results.append(run_outbox_row(slug, rows[0][0])))
        worker.start()  # an idle worker takes the job before the relay commits
        workers.append(worker)
        with psycopg.connect(app.config["SQLALCHEMY_DATABASE_URI"].replace("+psycopg", "")) as watcher:
            deadline = time.monotonic() + 10
            while worker.is_alive() and time.monotonic() < deadline and not watcher.execute(
                    "select count(*) from pg_stat_activity where wait_event_type = 'Lock'").fetchone()[0]:
                time.sleep(0.01)  # until it has met the relay's lock on the row (or given up on it)
        return sent

    monkeypatch.setattr(dispatch, "enqueue_rows", enqueued_and_taken_at_once)
    with app.app_context(), tenant_context(ref):
        assert dispatch.relay_tenant(tenant.slug) == 1
        db.session.rollback()
    workers[0].join(30)
    assert results and results[0] != "already processed or in progress"
    with app.app_context(), tenant_context(ref):
        assert db.session.get(OutboxRow, row_id).processed_at is not None
        db.session.rollback()
