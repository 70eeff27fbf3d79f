"""`GET /api/v1/reports/overview`: the dashboard's figures, counted by Postgres, for one tenant only."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from app import create_app
from app.extensions import db
from app.tickets.models import Ticket
from tests.helpers import ApiClient, Desk, app_config, new_ticket, post_message, wait_until


def _overview(api, **query):
    resp = api.get("/api/v1/reports/overview", query_string=query)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_figures_count_backlog_flow_times_load_queue_and_rules(tenant, other_tenant, run_jobs):
    desk = Desk(tenant)
    agent = desk.agents(1, capacity=2)[0]
    team = desk.team("Support", [agent])
    rule = desk.rule(team, name="everything")
    tickets = [new_ticket(tenant.api, f"t{i}", priority=p) for i, p in enumerate(["high", "high", "low", "urgent"])]
    new_ticket(other_tenant.api, "not ours", priority="urgent")
    run_jobs()  # two go to the agent (capacity 2), two wait
    agent_api = tenant.key_for(agent)
    mine = [t for t in tickets if tenant.api.get(f"/api/v1/tickets/{t['id']}").get_json()["assignee_id"]]
    assert post_message(agent_api, mine[0]["id"], body="on it").status_code == 201
    assert tenant.api.post(f"/api/v1/tickets/{mine[1]['id']}/close").status_code == 200
    run_jobs()  # the close frees a slot: one more is handed out

    got = _overview(tenant.api)
    assert got["backlog"]["total"] == 3
    assert sum(got["backlog"]["by_status"].values()) == 3 and got["backlog"]["by_status"]["new"] == 1
    assert sum(got["backlog"]["by_priority"].values()) == 3
    today = datetime.now(UTC).date().isoformat()
    assert got["period"]["to"] == today and got["period"]["from"] == got["flow"][0]["day"]
    assert len(got["flow"]) == 30
    assert got["flow"][-1] == {"day": today, "created": 4, "closed": 1}
    assert got["first_response"]["count"] == 1 and got["first_response"]["median_seconds"] >= 0
    assert got["resolution"]["count"] == 1
    assert [(a["user_id"], a["open_tickets"], a["capacity"]) for a in got["agents"] if a["role"] == "agent"] == [
        (agent["id"], 2, 2)]
    assert got["unassigned"]["count"] == 1
    assert datetime.fromisoformat(got["unassigned"]["oldest_created_at"]).tzinfo is not None
    assert "T" in got["unassigned"]["oldest_created_at"]  # RFC 3339, as the document says
    by_rule = {r["rule_name"]: r for r in got["rules"]}
    assert by_rule["everything"]["rule_id"] == rule["id"] and by_rule["everything"]["assigned"] == 3
    assert by_rule["everything"]["waiting"] >= 1
    assert _overview(other_tenant.api)["backlog"]["total"] == 1


def test_only_admins_read_figures_and_bad_queries_are_refused(tenant):
    day = datetime.now(UTC).date()
    got = _overview(tenant.api, **{"from": (day - timedelta(days=6)).isoformat()})
    assert len(got["flow"]) == 7 and got["bucket"] == "day" and got["period"]["days"] == 7
    for query in ({"from": "yesterday"}, {"to": "2026-02-30"}, {"colour": "red"}):
        assert tenant.api.get("/api/v1/reports/overview", query_string=query).status_code == 422, query
    for role in ("agent", "requester"):
        assert tenant.key_for(tenant.user(role)).get("/api/v1/reports/overview").status_code == 403


def test_from_after_to_is_an_empty_period(tenant, run_jobs):
    desk = Desk(tenant)
    desk.rule(desk.team("Support", desk.agents(1)), name="everything")
    ticket = new_ticket(tenant.api, "today")
    run_jobs()
    assert tenant.api.post(f"/api/v1/tickets/{ticket['id']}/close").status_code == 200
    new_ticket(tenant.api, "waiting")
    day = datetime.now(UTC).date()
    got = _overview(tenant.api, **{"from": day.isoformat(), "to": (day - timedelta(days=1)).isoformat()})
    assert got["period"] == {"from": day.isoformat(), "to": (day - timedelta(days=1)).isoformat(), "days": 0}
    assert got["flow"] == [] and got["rules"] == []
    assert got["first_response"] == {"count": 0, "median_seconds": None, "p90_seconds": None}
    assert got["resolution"]["count"] == 0
    assert got["backlog"]["total"] == 1  # figures of now are not figures of the period
    assert _overview(tenant.api, **{"from": day.isoformat()})["resolution"]["count"] == 1


def _backdate(in_tenant, tenant, ticket: dict, created: datetime, closed: datetime | None = None) -> None:
    with in_tenant(tenant) as session:
        session.execute(sa.update(Ticket).where(Ticket.id == ticket["id"]).values(created_at=created,
                                                                                  closed_at=closed))
        session.commit()


def _at(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)


@pytest.mark.parametrize("days, bucket", [(92, "day"), (93, "week"), (731, "week"), (732, "month")])
def test_long_periods_count_flow_per_week_or_month(tenant, in_tenant, days, bucket):
    to = date(2026, 11, 18)  # a Wednesday
    start = to - timedelta(days=days - 1)
    first, middle, last = (new_ticket(tenant.api, t) for t in ("first", "middle", "last"))
    _backdate(in_tenant, tenant, first, _at(start), closed=_at(to))
    _backdate(in_tenant, tenant, middle, _at(start + timedelta(days=days // 2)))
    _backdate(in_tenant, tenant, last, _at(to))
    _backdate(in_tenant, tenant, new_ticket(tenant.api, "before"), _at(start - timedelta(days=1)))
    _backdate(in_tenant, tenant, new_ticket(tenant.api, "after"), _at(to + timedelta(days=1)))
    got = _overview(tenant.api, **{"from": start.isoformat(), "to": to.isoformat()})
    assert got["bucket"] == bucket and got["period"]["days"] == days
    starts = [date.fromisoformat(b["day"]) for b in got["flow"]]
    assert starts[0] == start and starts == sorted(starts)
    if bucket == "day":
        assert len(starts) == days
    elif bucket == "week":
        assert all(d.weekday() == 0 for d in starts[1:]) and starts[-1] == to - timedelta(days=to.weekday())
    else:
        assert all(d.day == 1 for d in starts[1:]) and starts[-1] == to.replace(day=1)
    assert sum(b["created"] for b in got["flow"]) == 3 and sum(b["closed"] for b in got["flow"]) == 1
    assert got["flow"][0]["created"] == 1 and got["flow"][-1] == {"day": starts[-1].isoformat(), "created": 1,
                                                                  "closed": 1}


def test_any_pair_of_days_at_most_a_century_apart_is_a_period(tenant):
    got = _overview(tenant.api, **{"from": "1927-01-01", "to": "2026-12-31"})
    assert got["bucket"] == "month" and len(got["flow"]) == 100 * 12
    # a century is counted in years, whatever leap days it holds
    for start, end in (("1926-12-31", "2026-12-31"), ("1900-01-01", "2000-01-01"), ("1924-02-29", "2024-02-29"),
                       ("1924-02-28", "2024-02-28"), ("0001-01-01", "0100-12-31")):
        assert _overview(tenant.api, **{"from": start, "to": end})["period"]["from"] == start
    assert got["flow"][0]["day"] == "1927-01-01" and got["flow"][-1]["day"] == "2026-12-01"
    assert sum(b["created"] for b in got["flow"]) == 0
    new_ticket(tenant.api, "now")
    assert sum(b["created"] for b in _overview(tenant.api, **{"from": "1927-01-01"})["flow"]) == 1
    # a longer one would be a huge answer to cache and draw for nothing: refused, naming the field
    for query in ({"from": "0001-01-01", "to": "9999-12-31"}, {"from": "0001-01-01"},
                  {"from": "1926-12-30", "to": "2026-12-31"}, {"from": "1924-02-28", "to": "2024-02-29"}):
        resp = tenant.api.get("/api/v1/reports/overview", query_string=query)
        assert (resp.status_code, resp.get_json()["errors"]) == (422, {"from": ["A period spans at most 100 years."]})
    assert _overview(tenant.api, **{"to": "0001-01-03"})["period"] == {"from": "0001-01-01", "to": "0001-01-03",
                                                                     "days": 3}
    assert _overview(tenant.api, **{"from": "9999-12-31", "to": "9999-12-31"})["flow"] == [
        {"day": "9999-12-31", "created": 0, "closed": 0}]
    assert _overview(tenant.api, **{"from": "9999-12-31"})["period"]["days"] == 0


def test_figures_are_kept_for_a_few_seconds(services, tenant):
    cached = ApiClient(create_app(app_config(services, DASHBOARD_CACHE_SECONDS=60)).test_client(), tenant.key)
    first = _overview(cached)
    new_ticket(tenant.api, "after the first look")
    assert _overview(cached) == first
    assert _overview(tenant.api)["backlog"]["total"] == first["backlog"]["total"] + 1


def test_one_organizations_dashboard_computations_are_shared_out_and_others_compute_on(
        app, tenant, other_tenant, monkeypatch):
    """At most DASHBOARD_CONCURRENCY_PER_TENANT uncached computations per organization at once, per process."""
    import threading

    from app.dashboard import services as reports
    from tenants import active_tenant, current_tenant

    monkeypatch.setitem(app.config, "DASHBOARD_CONCURRENCY_PER_TENANT", 1)
    with app.app_context():
        held_tenant = str(active_tenant(tenant.slug).id)
    started, release = threading.Event(), threading.Event()
    load = reports.agent_load

    def slow_load():
        if current_tenant().id == held_tenant:  # a period of years, sorting every ticket
            started.set()
            release.wait(30)
        return load()

    monkeypatch.setattr(reports, "agent_load", slow_load)
    answers = []
    first = threading.Thread(target=lambda: answers.append(tenant.api.get("/api/v1/reports/overview")))
    first.start()
    assert started.wait(30)
    refused = tenant.api.get("/api/v1/reports/overview")
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert "1 dashboard computations running" in refused.get_json()["message"]
    assert other_tenant.api.get("/api/v1/reports/overview").status_code == 200
    release.set()
    first.join(30)
    assert [a.status_code for a in answers] == [200]
    assert tenant.api.get("/api/v1/reports/overview").status_code == 200


def asker(app, tenant, day: str, answers: list):
    """Return a function asking `app` for the figures from `day` as `tenant`'s admin key, answers kept."""

    def ask() -> None:
        answers.append(ApiClient(app.test_client(), tenant.key).get("/api/v1/reports/overview",
                                                                    query_string={"from": day}))

    return ask


class Calls(list):
    """Computations started; `waiting`: requests that found the period being computed."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[int] = []


def _slowed(monkeypatch, tenant_slug: str, app, fail: bool = False):
    """Make the tenant's computations wait for `release` (and then fail, if asked); count them."""
    import threading

    from app.dashboard import services as reports
    from app.errors import Unavailable
    from tenants import active_tenant, current_tenant

    with app.app_context():
        held_tenant = str(active_tenant(tenant_slug).id)
    started, release, calls = threading.Event(), threading.Event(), Calls()
    load, wait_for = reports.agent_load, reports._wait_for
    waiting = calls.waiting

    def counted_wait(*args):
        from app.extensions import db

        waiting.append(db.session().in_transaction())  # a waiter holds no database connection
        return wait_for(*args)

    def slow_load():
        if current_tenant().id == held_tenant:
            calls.append(1)
            started.set()
            release.wait(30)
            if fail and len(calls) == 1:
                raise Unavailable("The database is busy.")
        return load()

    monkeypatch.setattr(reports, "agent_load", slow_load)
    monkeypatch.setattr(reports, "_wait_for", counted_wait)
    return started, release, calls


def test_a_period_being_computed_is_waited_for_not_computed_again(services, tenant, monkeypatch):
    """Admins asking for a period while it is being computed get its figures when they are ready:
    one computation, and no 503 from the organization's share."""
    import threading

    cached_app = create_app(app_config(services, DASHBOARD_CACHE_SECONDS=60, DASHBOARD_CONCURRENCY_PER_TENANT=1))
    started, release, calls = _slowed(monkeypatch, tenant.slug, cached_app)
    answers: list = []
    ask = asker(cached_app, tenant, "2020-01-01", answers)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    threads[0].start()
    assert started.wait(30)
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: len(calls.waiting) == 2, "both later requests to find the period being computed")
    release.set()
    for thread in threads:
        thread.join(30)
    assert [a.status_code for a in answers] == [200, 200, 200], [a.get_json() for a in answers]
    assert len({a.get_data() for a in answers}) == 1
    assert len(calls) == 1 and calls.waiting == [False, False]


def test_figures_stored_just_before_their_lock_went_are_taken_not_computed_again(app):
    """A waiter read no figures; the computer stored them and let go of its lock; the waiter then saw
    no lock and computed them again, answering another `computed_at` than the first admin's."""
    import uuid

    from app.dashboard import services as reports
    from app.extensions import redis_client

    with app.app_context():
        client = redis_client()
        key = f"tms:test:{uuid.uuid4()}:dashboard"
        lock = f"{key}:computing"
        client.set(lock, b"held", ex=60)

        class FinishingMeanwhile:  # the real Redis, with the computer finishing between the reads
            def get(self, name):
                return client.get(name)

            def exists(self, name):
                client.set(key, b"figures", ex=60)
                client.delete(lock)
                return client.exists(name)

        assert reports._wait_for(FinishingMeanwhile(), key, lock) == "figures"
        client.delete(key)


def test_the_requests_waiting_for_a_period_are_few_per_organization(services, tenant, monkeypatch):
    import threading

    cached_app = create_app(app_config(services, DASHBOARD_CACHE_SECONDS=60, DASHBOARD_WAITERS_PER_TENANT=1))
    started, release, calls = _slowed(monkeypatch, tenant.slug, cached_app)
    answers: list = []
    ask = asker(cached_app, tenant, "2019-01-01", answers)

    def ask_as_a_page():  # a page has read its signed-in user through the session before it asks
        from app.dashboard import services as reports
        from tenants import active_tenant, tenant_context

        with cached_app.app_context():
            with tenant_context(active_tenant(tenant.slug).ref()):
                db.session.execute(sa.text("select 1"))
                period = reports.Period.of(date(2019, 1, 1), None, datetime.now(UTC).date())
                answers.append(json.loads(reports.figures_json(period)))
            db.session.remove()

    first, second = threading.Thread(target=ask), threading.Thread(target=ask_as_a_page)
    first.start()
    assert started.wait(30)
    second.start()
    wait_until(lambda: calls.waiting, "the second request to wait")
    assert calls.waiting == [False], "a waiting page gave its database connection back"
    ask()  # a third, while one waits already: refused at once
    assert answers[-1].status_code == 503 and "waiting for figures" in answers[-1].get_json()["message"]
    release.set()
    first.join(30)
    second.join(30)
    responses = [a.status_code for a in answers if not isinstance(a, dict)]
    assert sorted(responses) == [200, 503]
    assert [a["period"]["from"] for a in answers if isinstance(a, dict)] == ["2019-01-01"]


def test_when_the_computation_waited_for_fails_a_waiter_computes_itself(services, tenant, monkeypatch):
    import threading

    cached_app = create_app(app_config(services, DASHBOARD_CACHE_SECONDS=60))
    started, release, calls = _slowed(monkeypatch, tenant.slug, cached_app, fail=True)
    answers = {}

    def ask(name):
        answers[name] = ApiClient(cached_app.test_client(), tenant.key).get("/api/v1/reports/overview",
                                                                            query_string={"from": "2021-01-01"})

    first, second = threading.Thread(target=ask, args=("first",)), threading.Thread(target=ask, args=("second",))
    first.start()
    assert started.wait(30)
    second.start()
    wait_until(lambda: calls.waiting, "the second request to find the period being computed")
    release.set()
    first.join(30)
    second.join(30)
    assert answers["first"].status_code == 503
    assert answers["second"].status_code == 200 and len(calls) == 2


def test_the_unassigned_figure_counts_the_unassigned_queue_it_links_to(tenant, in_tenant):
    """A pending ticket with nobody on it (set so by hand, or left by an agent who went) is in the Unassigned
    queue, which the figure links to, but the figure counted only new tickets."""
    import uuid

    from app.auth.actor import Actor
    from app.tickets.queues import queue_counts

    waiting = tenant.api.post("/api/v1/tickets", json={"title": "waiting on the customer"}).get_json()
    pending = tenant.api.patch(f"/api/v1/tickets/{waiting['id']}", json={"status": "pending"})
    assert (pending.status_code, pending.get_json()["assignee_id"]) == (200, None)
    assert tenant.api.post("/api/v1/tickets", json={"title": "new"}).status_code == 201
    with in_tenant(tenant):
        queued = queue_counts(Actor(user_id=uuid.UUID(tenant.admin_id), role="admin"))["unassigned"]
    figure = _overview(tenant.api)["unassigned"]
    assert figure["count"] == queued == 2
    assert figure["oldest_created_at"] == waiting["created_at"]
