"""Assignment in real worker processes: bursts, capacity under concurrency, crashes, Redis outages."""

from __future__ import annotations

import os
import random
import signal
import uuid
from collections import Counter

import pytest
import sqlalchemy as sa

from app import create_app
from app.embedded import EmbeddedRedis, stop_process
from app.extensions import db
from app.outbox.dispatch import relay_tenant
from tenants.context import tenant_context
from tenants.names import schema_for
from tenants.resolution import active_tenant
from tests.helpers import ApiClient, Desk, TenantHandle, app_config, wait_until
from tests.servers import start_relay, start_worker


@pytest.fixture
def engine(services):
    engine = sa.create_engine(services.database_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture
def workers(services, tmp_path):
    started = []

    def start(n: int = 1, redis_url: str | None = None) -> list:
        procs = [start_worker(services.database_url, redis_url or services.redis_url, tmp_path,
                              f"worker-{len(started) + i}") for i in range(n)]
        if not started:
            started.append(start_relay(services.database_url, redis_url or services.redis_url, tmp_path))
        started.extend(procs)
        return procs

    def stop() -> None:
        while started:
            stop_process(started.pop(), signal.SIGTERM, 10)

    start.stop = stop  # a test that takes its own Redis away stops them first: without it they wait out the grace
    yield start
    stop()


def pending_rows(engine, slug: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            f'SELECT count(*) FROM "{schema_for(slug)}".outbox WHERE processed_at IS NULL')).scalar_one()


def state(engine, slug: str) -> dict:
    """Read the tenant's tickets, agents and decisions straight from the database."""
    schema = schema_for(slug)
    with engine.connect() as conn:
        tickets = conn.execute(sa.text(
            f'SELECT id, status, assignee_id, team_id, priority FROM "{schema}".tickets')).mappings().all()
        users = conn.execute(sa.text(
            f'SELECT u.id, u.capacity, u.available, '
            f'(SELECT count(*) FROM "{schema}".tickets t WHERE t.assignee_id = u.id '
            f"AND t.status IN ('new', 'open', 'pending')) AS open "
            f'FROM "{schema}".users u WHERE u.role = \'agent\'')).mappings().all()
        members = conn.execute(sa.text(f'SELECT team_id, user_id FROM "{schema}".team_members')).all()
        chosen = conn.execute(sa.text(
            f'SELECT ticket_id, count(*) AS n FROM "{schema}".assignment_decisions '
            f"WHERE chosen_user_id IS NOT NULL AND source = 'auto' GROUP BY ticket_id")).all()
        audits = conn.execute(sa.text(
            f"SELECT entity_id, count(*) FROM \"{schema}\".audit_log WHERE action = 'assigned' "
            f"GROUP BY entity_id")).all()
    teams: dict = {}
    for team_id, user_id in members:
        teams.setdefault(team_id, set()).add(user_id)
    return {"tickets": tickets, "users": {u["id"]: u for u in users}, "teams": teams,
            "chosen": dict(chosen), "audits": dict(audits)}


def check_invariants(s: dict) -> tuple[int, int]:
    """Assert capacity, single assignment and no stranded ticket; return (assigned, queued)."""
    for user in s["users"].values():
        if user["capacity"] is not None:
            assert user["open"] <= user["capacity"], user
    assigned = [t for t in s["tickets"] if t["assignee_id"] is not None and t["status"] != "closed"]
    queued = [t for t in s["tickets"] if t["assignee_id"] is None]
    for t in assigned:
        assert t["status"] == "open"
        assert t["assignee_id"] in s["teams"][t["team_id"]]
    for t in [t for t in s["tickets"] if t["assignee_id"] is not None]:
        assert s["chosen"].get(t["id"]) == 1 and s["audits"].get(t["id"]) == 1, t
    for t in queued:
        assert t["status"] == "new"
        # a ticket only waits if every member of its team is at capacity
        for user_id in s["teams"][t["team_id"]]:
            user = s["users"][user_id]
            assert user["capacity"] is not None and user["open"] >= user["capacity"], (t, user)
    return len(assigned), len(queued)


def test_burst_of_200_with_two_workers_respects_capacity(desk, workers, engine):
    # small capacities, and every agent in both teams: nearly every pick takes an agent's last free
    # slot while a job of the other team, ranking agents the same way, may be picking the same agent
    agents = [desk.t.user("agent", name=f"a{i}", capacity=1 + i % 3) for i in range(24)]
    front = desk.team("Front", agents)
    urgent = desk.team("Urgent", agents)
    desk.rule(urgent, "least_loaded", name="urgent first", position=1, conditions={"priority": ["urgent", "high"]})
    desk.rule(front, "least_loaded", name="everything else", position=2)
    for proc in workers(1):  # run the set-up's own events (members joined) first, then stop
        wait_until(lambda: pending_rows(engine, desk.t.slug) == 0, "the set-up events to be processed")
        stop_process(proc, signal.SIGTERM, 10)
    rnd = random.Random(4)
    tickets = [desk.ticket(f"burst {i}", priority=rnd.choice(["low", "normal", "high", "urgent"]))
               for i in range(200)]
    assert len(tickets) == 200
    # 200 assignment jobs wait in Redis; two workers now race through the backlog
    workers(2)
    wait_until(lambda: pending_rows(engine, desk.t.slug) == 0, "the burst to be processed")
    assigned, queued = check_invariants(state(engine, desk.t.slug))
    assert assigned + queued == 200
    assert assigned == sum(a["capacity"] for a in agents)  # 48 slots, 152 waiting: every slot filled
    # capacity frees: close 30 assigned tickets at once, the queue drains into exactly those slots
    s = state(engine, desk.t.slug)
    closing = [t["id"] for t in s["tickets"] if t["assignee_id"] is not None][:30]
    for ticket_id in closing:
        assert desk.t.api.post(f"/api/v1/tickets/{ticket_id}/close", json={}).status_code == 200
    wait_until(lambda: pending_rows(engine, desk.t.slug) == 0, "the drain to be processed")
    assigned, queued = check_invariants(state(engine, desk.t.slug))
    assert (assigned, queued) == (48, 122)


def _blocked_on_lock(engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%teams%'"
        )).scalar_one() > 0


def test_sigkill_mid_assignment_loses_nothing_and_assigns_once(app, desk, workers, engine, monkeypatch):
    (agent,) = desk.agents(1)
    team = desk.team("T", [agent])
    desk.rule(team, "round_robin")
    schema = schema_for(desk.t.slug)
    (victim,) = workers(1)
    # The setup's own rows (drains after the agent, team and rule changes) are done first, so the
    # job caught on the lock below is the new ticket's assignment, and nothing else.
    wait_until(lambda: pending_rows(engine, desk.t.slug) == 0, "the setup's rows to be processed")
    blocker = engine.connect()
    blocker.execute(sa.text(f'SELECT 1 FROM "{schema}".teams WHERE id = :id FOR UPDATE'), {"id": team["id"]})
    ticket = desk.ticket("crash course")
    wait_until(lambda: _blocked_on_lock(engine), "the worker to be mid-assignment, waiting on the team lock")
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    blocker.rollback()
    blocker.close()
    assert desk.get(ticket)["assignee_id"] is None  # the killed job committed nothing
    workers(1)
    monkeypatch.setitem(app.config, "OUTBOX_REDELIVER_AFTER", 1)

    def relayed_and_assigned() -> bool:
        with app.app_context(), tenant_context(active_tenant(desk.t.slug).ref()):
            relay_tenant(desk.t.slug)
        return desk.get(ticket)["assignee_id"] == agent["id"]

    wait_until(relayed_and_assigned, "the relay to redeliver the killed job", every=0.5)
    wait_until(lambda: pending_rows(engine, desk.t.slug) == 0, "every row to be processed")
    s = state(engine, desk.t.slug)
    ticket_id = uuid.UUID(ticket["id"])
    assert s["chosen"] == {ticket_id: 1} and s["audits"] == {ticket_id: 1}
    with engine.connect() as conn:
        attempts = conn.execute(sa.text(
            f"SELECT o.attempts FROM \"{schema}\".outbox o JOIN \"{schema}\".events e ON e.id = o.event_id "
            "WHERE e.type = 'ticket.created'")).scalar_one()
    assert attempts == 1  # the killed attempt was rolled back with everything else


def test_redis_outage_during_ticket_creation_delays_then_drains(services, workers, engine, tmp_path):
    redis_server = EmbeddedRedis(tmp_path / "redis").start()
    app = create_app(app_config(services, REDIS_URL=redis_server.url, OUTBOX_REDELIVER_AFTER=1))
    client = app.test_client()
    slug = f"r{uuid.uuid4().hex[:10]}"
    body = client.post("/api/v1/signup", json={"name": "Outage", "slug": slug, "admin_email": f"a@{slug}.com",
                                                "admin_password": "correct horse battery"}).get_json()
    handle = TenantHandle(slug=slug, key=body["api_key"], admin_id=body["admin_id"], admin_email="",
                          admin_password="", api=ApiClient(client, body["api_key"]))
    desk = Desk(handle)
    agents = desk.agents(3, capacity=20)
    desk.rule(desk.team("T", agents), "round_robin")
    workers(1, redis_url=redis_server.url)
    try:
        before = [desk.ticket(f"before {i}") for i in range(10)]
        redis_server.stop()
        during = [desk.ticket(f"during {i}") for i in range(10)]  # 201 while Redis is down
        redis_server = EmbeddedRedis(tmp_path / "redis", port=redis_server.port).start()
        after = [desk.ticket(f"after {i}") for i in range(10)]
        tickets = before + during + after

        def relayed_and_drained() -> bool:
            with app.app_context():
                ref = active_tenant(slug).ref()
                db.session.rollback()
                with tenant_context(ref):
                    relay_tenant(slug)
            return pending_rows(engine, slug) == 0

        wait_until(relayed_and_drained, "the outbox to drain after Redis came back", every=0.5)
        got = [desk.get(t) for t in tickets]
        assert all(t["status"] == "open" for t in got)
        assert Counter(t["assignee_id"] for t in got) == {a["id"]: 10 for a in agents}
        check_invariants(state(engine, slug))
    finally:
        workers.stop()
        redis_server.stop()


def test_round_robin_stays_strict_across_worker_processes_and_restarts(desk, workers, engine):
    agents = desk.agents(3)
    desk.rule(desk.team("Rotation", agents), "round_robin")
    tickets = []
    for phase in range(2):  # the rotation survives replacing every worker process
        procs = workers(2)
        tickets += [desk.ticket(f"rr {phase}-{i}") for i in range(16)]
        wait_until(lambda: pending_rows(engine, desk.t.slug) == 0, "the tickets to be processed")
        for proc in procs:
            stop_process(proc, signal.SIGTERM, 10)
    tickets += [desk.ticket(f"rr after {i}") for i in range(4)]
    workers(1)
    wait_until(lambda: pending_rows(engine, desk.t.slug) == 0, "the last tickets to be processed")
    with engine.connect() as conn:
        order = [row[0] for row in conn.execute(sa.text(
            f'SELECT chosen_user_id FROM "{schema_for(desk.t.slug)}".assignment_decisions '
            f"WHERE source = 'auto' ORDER BY created_at"))]
    assert len(order) == len(tickets)
    assert Counter(order) == {uuid.UUID(a["id"]): len(tickets) // 3 for a in agents}
    # every run of three consecutive assignments, whichever process made them, covers all three agents
    assert all(len(set(order[i:i + 3])) == 3 for i in range(len(order) - 2))
