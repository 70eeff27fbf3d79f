"""One organization's flood is throttled while another's requests go on; no statement runs forever."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from app import create_app
from app.extensions import db
from tests.helpers import ApiClient, app_config


@pytest.fixture
def strict(services):
    return create_app(app_config(services, RATE_LIMIT_PER_MINUTE=1000, RATE_LIMIT_PER_TENANT_PER_MINUTE=30,
                                 DB_STATEMENT_TIMEOUT_MS=300))


def test_a_flooding_tenant_is_throttled_and_a_quiet_one_is_not(strict, make_tenant):
    noisy, quiet = make_tenant(), make_tenant()
    client = strict.test_client()
    keys = [ApiClient(client, noisy.key)] + [ApiClient(client, noisy.key_for(noisy.user("agent")).key)
                                              for _ in range(2)]
    quiet_api = ApiClient(client, quiet.key)
    statuses, quiet_statuses = [], []
    for i in range(60):
        statuses.append(keys[i % 3].get("/api/v1/tickets").status_code)  # no key is over its own limit
        if i % 6 == 0:
            quiet_statuses.append(quiet_api.get("/api/v1/tickets").status_code)
    assert statuses.count(200) <= 30 < statuses.count(429) + statuses.count(200)
    assert statuses[-1] == 429
    refused = keys[0].get("/api/v1/tickets")
    assert "organization" in refused.get_json()["message"] and int(refused.headers["Retry-After"]) > 0
    assert set(quiet_statuses) == {200}


def test_every_connection_carries_a_statement_timeout(services):
    app = create_app(app_config(services, DB_STATEMENT_TIMEOUT_MS=300))
    with app.app_context():
        assert db.session.execute(sa.text("show statement_timeout")).scalar() == "300ms"
        with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
            db.session.execute(sa.text("select pg_sleep(2)"))
        db.session.rollback()


def test_one_tenants_burst_cannot_queue_ahead_of_another_tenants_work(services, make_tenant, monkeypatch):
    from rq import Queue, SimpleWorker

    from app import outbox
    from app.extensions import redis_client
    from app.outbox.dispatch import relay_once, relay_tenant
    from app.worker import use_app
    from tenants import active_tenant, tenant_context
    from tests.helpers import new_ticket

    done: list[str] = []
    handler = outbox.Handler(name="tests.fair.record", queue="default",
                             func=lambda payload: done.append(payload["ticket_id"]))
    monkeypatch.setitem(outbox.BY_NAME, handler.name, handler)
    monkeypatch.setitem(outbox.HANDLERS, "ticket.created", [*outbox.HANDLERS.get("ticket.created", []), handler])
    app = create_app(app_config(services, TENANT_QUEUED_JOBS=3, OUTBOX_REDELIVER_AFTER=0.05))
    busy, quiet = make_tenant(), make_tenant()
    busy_api, quiet_api = ApiClient(app.test_client(), busy.key), ApiClient(app.test_client(), quiet.key)
    with app.app_context():
        default = Queue("default", connection=redis_client())
        default.empty()
    burst = [new_ticket(busy_api, f"burst {i}")["id"] for i in range(10)]
    quiet_ticket = new_ticket(quiet_api, "one of mine")["id"]
    with app.app_context():  # what the relay does on the creates' wakes
        relay_once(fresh=True, slugs={busy.slug, quiet.slug})
    waiting = [job.args[0] for job in default.jobs]
    assert waiting.count(busy.slug) == 3 and waiting.count(quiet.slug) == 1  # the rest of the burst waits
    use_app(app)
    for _ in range(10):
        SimpleWorker(["default"], connection=default.connection).work(burst=True)
        with app.app_context():  # the relay's sweep, for these two tenants only
            for tenant in (busy, quiet):
                ref = active_tenant(tenant.slug).ref()
                db.session.rollback()
                with tenant_context(ref):
                    relay_tenant(tenant.slug)
        if set(burst) <= set(done):
            break
    assert quiet_ticket in done and set(burst) <= set(done)  # nothing is lost, the burst is only spread out
    assert done.index(quiet_ticket) < 4  # among the first jobs, not behind the whole burst


def test_a_job_of_a_suspended_tenant_gives_its_place_back(app, tenant, run_jobs):
    """It returned at once, keeping its place for the lease (ten minutes): reactivated, the tenant's work
    waited that long behind places nobody held."""
    from app.extensions import redis_client
    from app.outbox.dispatch import relay_once
    from app.queues import share_key
    from tests.helpers import new_ticket

    hook = tenant.api.post("/api/v1/webhooks", json={"url": "https://hooks.example.com/tms",
                                                      "events": ["ticket.created"]})
    assert hook.status_code == 201, hook.get_json()
    new_ticket(tenant.api)
    with app.app_context():
        relay_once(fresh=True)
        shares = [share_key(tenant.slug, queue) for queue in ("assignment", "webhooks")]
        assert [redis_client().zcard(share) for share in shares] == [1, 1]
    assert app.test_cli_runner().invoke(args=["tenants", "suspend", tenant.slug]).exit_code == 0
    run_jobs("assignment", "webhooks")
    with app.app_context():
        assert [redis_client().zcard(share) for share in shares] == [0, 0]


def test_a_place_kept_for_a_retry_outlives_the_share_and_none_is_made_for_a_job_that_lost_its_own(app):
    """`Place.keep_for` extends the place its job holds, and the share with it; a job whose lease ran
    out (its place handed to another) gets none back, so the share never holds more than its cap."""
    import time

    from app.extensions import redis_client
    from app.queues import Place, reserve, share_key

    with app.app_context():
        connection, key = redis_client(), share_key("fair-keep", "media")
        connection.delete(key)
        assert reserve("fair-keep", "media", ["1"]) == ["1"]
        kept = Place("fair-keep", "media", "1")
        kept.keep_for(3600)
        kept.give_back()
        assert connection.zscore(key, "1") > time.time() + 3600 and connection.ttl(key) > 3600
        lost = Place("fair-keep", "media", "2")
        lost.keep_for(3600)
        lost.give_back()
        assert connection.zscore(key, "2") is None and connection.zcard(key) == 1
        Place("fair-keep", "media", "1").give_back()
        assert connection.zcard(key) == 0


def test_a_crashed_job_keeps_its_place_while_rq_waits_to_retry_it(app, tenant, run_jobs, monkeypatch):
    """A crash, recorded on its row or not (the database gone as the job fails), is retried by RQ: its
    place stays until then, so the relay cannot hand on the tenant's next rows to crash beside it."""
    from app import outbox
    from app.extensions import redis_client
    from app.outbox.dispatch import relay_once
    from app.queues import share_key
    from app.worker import _run_one
    from tests.helpers import new_ticket

    def crash(payload: dict) -> None:
        raise RuntimeError("a bug")

    handler = outbox.Handler(name="tests.fair.crash", queue="default", func=crash)
    monkeypatch.setitem(outbox.BY_NAME, handler.name, handler)
    monkeypatch.setitem(outbox.HANDLERS, "ticket.created", [*outbox.HANDLERS.get("ticket.created", []), handler])
    unrecorded = {"on": False}

    def run_one(*args, **kwargs):
        if unrecorded["on"]:
            raise ConnectionError("the database went away as the job failed")
        return _run_one(*args, **kwargs)

    monkeypatch.setattr("app.worker._run_one", run_one)
    with app.app_context():
        share = share_key(tenant.slug, "default")
        redis_client().delete(share)
    for unrecorded["on"] in (False, True):
        new_ticket(tenant.api)
        with app.app_context():
            relay_once(fresh=True, slugs={tenant.slug})
            [(member, leased_until)] = redis_client().zrange(share, 0, -1, withscores=True)
        run_jobs("default")
        with app.app_context():  # kept, its lease extended over RQ's retry wait
            kept = dict(redis_client().zrange(share, 0, -1, withscores=True))
            assert kept.keys() == {member} and kept[member] > leased_until
            redis_client().delete(share)


@pytest.mark.parametrize(("retried", "kept"), [(0, True), (100, False)])
def test_an_outage_keeps_the_place_only_while_rq_will_run_the_retry(app, tenant, in_tenant, monkeypatch, retried,
                                                                    kept):
    """Past its last retry RQ fails the job instead of running it again: a place kept for it would be held
    for nothing until its lease ran out."""
    from types import SimpleNamespace

    from app import queues, worker
    from app.errors import Unavailable
    from app.outbox import Handler
    from app.outbox.models import OutboxRow
    from app.queues import Place
    from tests.helpers import new_ticket

    def down(payload: dict) -> None:
        raise Unavailable("clamd is not reachable", retry_after=5)

    job = SimpleNamespace(number_of_retries=retried, retries_left=None, retry_intervals=None, args=())
    monkeypatch.setattr(worker, "get_current_job", lambda: job)
    monkeypatch.setattr(queues, "get_current_job", lambda: job)
    new_ticket(tenant.api)
    with in_tenant(tenant) as session:
        row_id = session.execute(sa.select(OutboxRow.id).limit(1)).scalar_one()
        place = Place(tenant.slug, "media", str(row_id))
        later = worker._run_one(row_id, Handler(name="tests.down", queue="media", func=down), place)
    assert later.max > 0 and (place.retry_in is not None) is kept


def _same_window() -> None:
    """Wait out the end of a rate-limit window, so the counts below fall in one."""
    left = 60 - time.time() % 60
    if left < 10:
        time.sleep(left + 0.1)


def test_requests_refused_by_their_own_limit_do_not_spend_the_organizations(services, make_tenant):
    """A requester flooding 429s on their own key, or on their pages, locked every admin and integration of
    the organization out, and a 429 for the organization's limit said requests remained."""
    app = create_app(app_config(services, RATE_LIMIT_PER_MINUTE=5, RATE_LIMIT_PER_TENANT_PER_MINUTE=20))
    tenant = make_tenant()
    requester = tenant.user("requester")
    flooding = ApiClient(app.test_client(), tenant.key_for(requester).key)
    admin = tenant.user("admin")
    admins = [ApiClient(app.test_client(), tenant.key_for(admin).key) for _ in range(3)]
    _same_window()
    statuses = [flooding.get(f"/api/v1/users/{requester['id']}").status_code for _ in range(25)]
    assert statuses == [200] * 5 + [429] * 20
    page = app.test_client()
    assert page.post(f"/t/{tenant.slug}/login", data={"email": requester["email"],
                                                      "password": "password123"}).status_code == 302
    statuses = [page.post(f"/t/{tenant.slug}/me/availability").status_code for _ in range(25)]
    assert statuses.count(429) == 20 and statuses[-1] == 429, statuses
    answered = admins[0].get("/api/v1/users")
    assert answered.status_code == 200 and answered.headers["X-RateLimit-Remaining"] == "4"
    # The organization's limit still binds before these keys' own (14 left between them) are spent.
    answers = [admins[i % 3].get("/api/v1/users") for i in range(14)]
    refused = next(resp for resp in answers if resp.status_code == 429)
    assert "organization" in refused.get_json()["message"]
    assert refused.headers["X-RateLimit-Remaining"] == "0" and int(refused.headers["Retry-After"]) > 0
