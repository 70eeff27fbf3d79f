"""The outbox relay hands overdue rows to RQ, visiting only tenants that have some."""

import sqlalchemy as sa
from rq import Queue

from app import create_app
from app.extensions import db, redis_client
from app.outbox.dispatch import relay_once
from tests.helpers import ApiClient, app_config


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
        db.session.execute(sa.text(f'with e as (insert into "tenant_{healthy.slug}".events (type, payload) '
                                   "values ('x', '{}') returning id) "
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
