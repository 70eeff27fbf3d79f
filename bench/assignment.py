"""Assignment figures: how fast real worker processes assign a backlog, and how soon a ticket is assigned.

Throughput: a backlog of `BENCH_ASSIGN_BACKLOG` new tickets (default 3,000, split over two
tenants) is written with the fast path off, then handed to RQ one job per outbox row (as the relay
does after an outage), and we time until the database shows every ticket assigned, with 1 and then
2 `flask worker` processes. Within one team assignments are serialised by its row lock (that is
what keeps round robin strict and capacity safe), so a second worker helps across teams and
tenants, not within one. Baseline: bare RQ in the same run (a worker process running no-op jobs).

Latency: with gunicorn, the outbox relay and 2 workers running (as `make run` has them), a client
posts tickets at each rate of `BENCH_ASSIGN_RATES` per second (open loop, default 50 and 100)
while a subscriber listens on the tenant's live channels, as a browser on the ticket's stream
would; each ticket's latency is from its `201` to its `ticket.updated` event carrying the
assignee. Web server, relay, workers, Postgres, Redis and the client all share the machine's 2
cores.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

import redis
import sqlalchemy as sa
from rq import Queue, Worker

from bench.common import ROOT, BenchContext, Row, percentile, start_relay

BACKLOG = int(os.environ.get("BENCH_ASSIGN_BACKLOG", "3000"))
RATES = [float(r) for r in os.environ.get("BENCH_ASSIGN_RATES", "50,100").split(",")]
AGENTS = 20
TENANTS = 2
BARE_JOBS = 2000


def run(ctx: BenchContext) -> list[Row]:
    bare = _bare_rq_jobs_per_second(ctx)
    rows = []
    for n in (1, 2):
        load = os.getloadavg()[0]
        rate = _backlog_rate(ctx, n)
        rows.append(Row(f"assignment: backlog of {BACKLOG} tickets in 2 tenants, {n} worker{'s' * (n > 1)}", rate,
                        "assigned/s", "bare RQ no-op jobs, 1 worker", bare, aim=">= 300 assigned/s",
                        note=f"least loaded among 20 agents; rows locked, decisions + audit recorded; "
                             f"machine load average {load:.1f} at start"))
    for rate in RATES:
        load = os.getloadavg()[0]
        lat = _latency(ctx, rate)
        note = (f"{lat['n']} tickets at {rate:.0f}/s, gunicorn + relay + 2 workers; no event for {lat['missing']}; "
                f"machine load average {load:.1f} at start")
        for pct, aim in (("p50", ""), ("p95", "< 200 ms"), ("p99", "")):
            rows.append(Row(f"assignment latency 201 -> assigned event at {rate:.0f}/s, {pct}", lat[pct], "ms",
                            aim=aim, note=note if pct == "p99" else ""))
    return rows


# --- helpers ---------------------------------------------------------------------------------

def _start_workers(ctx: BenchContext, n: int, queues: str = "assignment") -> list[subprocess.Popen]:
    conn = redis.Redis.from_url(ctx.redis_url)
    before = len(Worker.all(connection=conn))
    procs = [subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--queues", queues],
                              cwd=ROOT, env=ctx.env(), stdout=subprocess.DEVNULL,
                              stderr=open(ctx.work_dir / f"worker-{time.monotonic_ns()}.log", "wb"))  # noqa: SIM115
             for _ in range(n)]
    deadline = time.monotonic() + 60
    while len(Worker.all(connection=conn)) < before + n:
        if time.monotonic() > deadline:
            raise RuntimeError("workers did not start")
        time.sleep(0.1)
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _setup_tenant(ctx: BenchContext, prefix: str) -> tuple[str, str, str]:
    """Create a tenant with a team of agents (no capacity limit) and a least-loaded rule."""
    slug = f"{prefix}-{uuid.uuid4().hex[:6]}"
    key = ctx.signup(slug)
    api = ctx.app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    team = api.post("/api/v1/teams", json={"name": "Support"}, headers=auth).get_json()
    for i in range(AGENTS):
        user = api.post("/api/v1/users", json={"email": f"agent{i}@{slug}.example", "name": f"Agent {i}",
                                               "role": "agent"}, headers=auth).get_json()
        api.put(f"/api/v1/teams/{team['id']}/members/{user['id']}", headers=auth)
    resp = api.post("/api/v1/assignment-rules", json={"name": "all", "team_id": team["id"],
                                                      "strategy": "least_loaded"}, headers=auth)
    assert resp.status_code == 201, resp.get_json()
    with ctx.app.app_context():
        from app.extensions import db
        from tenants.resolution import active_tenant

        tenant_id = str(active_tenant(slug).id)
        db.session.rollback()
    return slug, key, tenant_id


def _tenant_engine(ctx: BenchContext) -> sa.Engine:
    return sa.create_engine(ctx.database_url, pool_size=1)


def _count_assigned(engine: sa.Engine, slug: str) -> int:
    from tenants.names import schema_for

    with engine.connect() as conn:
        return conn.execute(sa.text(
            f'SELECT count(*) FROM "{schema_for(slug)}".tickets WHERE assignee_id IS NOT NULL')).scalar_one()


# --- bare RQ ---------------------------------------------------------------------------------

def _bare_rq_jobs_per_second(ctx: BenchContext) -> float:
    conn = redis.Redis.from_url(ctx.redis_url)
    q = Queue("bench-bare", connection=conn)
    q.enqueue_many([q.prepare_data("time.time", result_ttl=60) for _ in range(BARE_JOBS)])
    procs = _start_workers(ctx, 1, queues="bench-bare")
    start = time.monotonic()
    try:
        while q.count and time.monotonic() - start < 120:
            time.sleep(0.02)
        # the last job was taken; wait for it to finish
        while len(q.finished_job_registry) < BARE_JOBS and time.monotonic() - start < 120:
            time.sleep(0.02)
        return BARE_JOBS / (time.monotonic() - start)
    finally:
        _stop(procs)


# --- throughput ------------------------------------------------------------------------------

def _backlog_rate(ctx: BenchContext, workers: int) -> float:
    from app.auth.actor import Actor
    from app.extensions import db
    from app.outbox.dispatch import enqueue_rows
    from app.outbox.models import Event, OutboxRow
    from app.tickets.services import create_ticket
    from tenants.context import tenant_context
    from tenants.resolution import active_tenant

    app = ctx.app
    slugs = [_setup_tenant(ctx, f"assign{workers}")[0] for _ in range(TENANTS)]
    procs = _start_workers(ctx, workers)
    try:
        for slug in slugs:
            _wait_idle(ctx, slug)
        app.config["OUTBOX_FAST_PATH"] = False
        jobs: list[list[tuple[str, list]]] = []
        with app.app_context():
            for slug in slugs:
                ref = active_tenant(slug).ref()
                db.session.rollback()
                with tenant_context(ref):
                    actor = Actor(user_id=None, role="admin")
                    for i in range(BACKLOG // TENANTS):
                        create_ticket(actor, title=f"Backlog {i}", description="Out of toner", priority="normal")
                        if i % 200 == 199:
                            db.session.commit()
                    db.session.commit()
                    rows = db.session.execute(
                        sa.select(OutboxRow.id, OutboxRow.handler).join(Event, Event.id == OutboxRow.event_id)
                        .where(Event.type == "ticket.created", OutboxRow.processed_at.is_(None))
                        .order_by(OutboxRow.id)
                    ).all()
                    db.session.rollback()
                jobs.append([(slug, [(r.id, r.handler) for r in rows[k:k + 50]]) for k in range(0, len(rows), 50)])
            engine = _tenant_engine(ctx)
            start = time.monotonic()
            # one job per row, the tenants' rows interleaved, as the relay hands them over after an outage
            for chunks in zip(*jobs, strict=True):
                for slug, rows in chunks:
                    enqueue_rows(slug, rows, coalesce=False)
        while sum(_count_assigned(engine, slug) for slug in slugs) < BACKLOG:
            if time.monotonic() - start > 300:
                raise RuntimeError("backlog not assigned within 300 s")
            time.sleep(0.02)
        elapsed = time.monotonic() - start
        engine.dispose()
        return BACKLOG / elapsed
    finally:
        app.config["OUTBOX_FAST_PATH"] = True
        # jobs whose rows a batch already took would only slow down the next run
        Queue("assignment", connection=redis.Redis.from_url(ctx.redis_url)).empty()
        _stop(procs)


def _wait_idle(ctx: BenchContext, slug: str) -> None:
    """Wait until the set-up's own events (members joining) are processed."""
    from tenants.names import schema_for

    engine = _tenant_engine(ctx)
    deadline = time.monotonic() + 60
    with engine.connect() as conn:
        while conn.execute(sa.text(
                f'SELECT count(*) FROM "{schema_for(slug)}".outbox WHERE processed_at IS NULL')).scalar_one():
            conn.rollback()
            if time.monotonic() > deadline:
                raise RuntimeError("set-up events not processed")
            time.sleep(0.05)
    engine.dispose()


# --- latency ---------------------------------------------------------------------------------

def _latency(ctx: BenchContext, rate: float) -> dict:
    slug, key, tenant_id = _setup_tenant(ctx, "assignlat")
    server = ctx.start_web()
    procs = _start_workers(ctx, 2)
    procs.append(start_relay(ctx))
    assigned_at: dict[str, float] = {}
    created_at: dict[str, float] = {}
    listening = threading.Event()
    stop = threading.Event()

    def listen() -> None:
        pubsub = redis.Redis.from_url(ctx.redis_url).pubsub(ignore_subscribe_messages=True)
        pubsub.psubscribe(f"tms:{tenant_id}:ticket:*")
        listening.set()
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.2)
            if message and message["type"] == "pmessage":
                now = time.monotonic()
                event = json.loads(message["data"])
                ticket = event.get("ticket") or {}
                if ticket.get("assignee_id") and ticket["id"] not in assigned_at:
                    assigned_at[ticket["id"]] = now
        pubsub.close()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    listening.wait(10)
    try:
        _wait_idle(ctx, slug)
        total = int(rate * ctx.duration)
        threads = 4
        per_thread = total // threads

        def post(offset: float) -> None:
            parts = urlsplit(server.base_url)
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            body = json.dumps({"title": "Cannot log in", "description": "Password reset mail never arrives",
                               "priority": "high"})
            begin = time.monotonic() + offset
            for i in range(per_thread):
                due = begin + i * threads / rate
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                conn.request("POST", "/api/v1/tickets", body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.status == 201:
                    created_at[json.loads(data)["id"]] = time.monotonic()

        posters = [threading.Thread(target=post, args=(k / rate,)) for k in range(threads)]
        for t in posters:
            t.start()
        for t in posters:
            t.join()
        deadline = time.monotonic() + 30
        while len(set(created_at) - set(assigned_at)) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        listener.join(5)
        _stop(procs)
        server.stop()
    latencies = [(assigned_at[t] - created_at[t]) * 1000 for t in created_at if t in assigned_at]
    return {"n": len(created_at), "missing": len(set(created_at) - set(assigned_at)),
            "p50": percentile(latencies, 50), "p95": percentile(latencies, 95), "p99": percentile(latencies, 99)}
