"""Load: 200 API clients for 60 s mixing reads and writes over three tenants, with 500 sockets receiving.

The product runs as `make run` runs it: gunicorn with gunicorn.conf.py as shipped (2 worker
processes), an RQ worker on the `assignment` queue, the outbox relay, embedded Postgres and Redis. Each tenant
has a team of agents with a least-loaded rule, an API key per agent and a second admin key, and
seeded tickets. Each client is a closed loop with no think time on one keep-alive connection,
picking an operation by weight: list, get, `q` search, create (with an `Idempotency-Key`, a few
re-sent with the same key as a client retrying after a timeout would), post a message, PATCH
(priority and category, no `If-Match`, so concurrent edits are last-writer-wins and never 412).
Messages go to the watched tickets, on which the sockets (agents' keys, `after_seq=0`) are open
before the clients start; every acknowledged message must reach every socket on its ticket.

Afterwards the database is read directly: every acknowledged ticket and message is there with
its title or body, no retried create made a second ticket, every acknowledged PATCH has its audit
row, and each PATCHed ticket holds what its last acknowledged PATCH (by version) wrote, with no
two acknowledgements of one version. Delivery latency runs from just before a message's POST is
sent to its arrival on a socket, so it includes the POST's own wait in the server's queue.

The sockets stay within the shipped caps per key, user and organization, which this row keeps
(other rows lift them). Rate limits are set high (`RATE_LIMIT_PER_MINUTE`, `_PER_TENANT_`): 200
clients with no think time are a flood, and once the server is fast enough the shipped 6,000 a
minute per organization would rightly answer it with 429; the note says how close the run came.
Clients and sockets share one event loop (bench/httpclient.py, bench/wsclient.py) in this
process, on the same 2 cores as everything else, so the note reports its CPU share.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import redis
import sqlalchemy as sa
from rq import Worker

from bench.common import ROOT, BenchContext, Row, Server, percentile, start_relay
from bench.httpclient import HttpConnection, Response
from bench.wsclient import AsyncWebSocket, Closed

DURATION = int(os.environ.get("BENCH_LOAD_SECONDS", "60"))
CLIENTS = int(os.environ.get("BENCH_LOAD_CLIENTS", "200"))
SOCKETS = int(os.environ.get("BENCH_LOAD_SOCKETS", "500"))
TENANTS = 3
WATCHED = 20  # tickets per tenant with sockets open on them; every message goes to one of these
SEEDED = 200  # tickets per tenant before the run
# Enough agents that no user holds more than 16 sockets, within the shipped caps this row keeps.
AGENTS = max(4, math.ceil(SOCKETS / TENANTS / 16))
RATE_LIMITS = {"RATE_LIMIT_PER_MINUTE": "60000", "RATE_LIMIT_PER_TENANT_PER_MINUTE": "300000"}
SHIPPED_SOCKET_CAPS = {"STREAM_MAX_SOCKETS_PER_KEY": "100", "STREAM_MAX_SOCKETS_PER_USER": "20",
                       "STREAM_MAX_SOCKETS_PER_TENANT": "1000"}
REPLAY_SHARE = 0.05  # creates re-sent with the same Idempotency-Key
OPS = {  # name: (label, weight)
    "list": ("GET /tickets?limit=50", 20),
    "get": ("GET /tickets/{id}", 25),
    "search": ("GET /tickets?q=", 10),
    "create": ("POST /tickets + Idempotency-Key", 15),
    "replay": ("POST /tickets, same key again", 0),  # never drawn: follows REPLAY_SHARE of creates
    "message": ("POST /tickets/{id}/messages", 20),
    "patch": ("PATCH /tickets/{id}", 10),
}
WORDS = ("printer", "laptop", "vpn", "password", "invoice", "refund", "email", "network", "screen", "keyboard",
         "login", "billing", "shipping", "battery", "wifi", "update", "calendar", "backup", "license", "monitor")
PRIORITIES = ("low", "normal", "high", "urgent")
LIST_SHAPES = ({}, {"status": "new,open"}, {"sort": "-updated_at"}, {"priority": "high,urgent"},
               {"sort": "-priority"})


@dataclass
class Tenant:
    slug: str
    keys: list[str]  # the API clients' keys: the two admin keys and the agents'
    agent_keys: list[str]  # the sockets' keys, one per agent
    tickets: list[str]  # every ticket known to exist, growing as clients create them
    watched: list[str]


@dataclass
class Watcher:
    """One open socket on a watched ticket and the load messages it received."""

    ws: AsyncWebSocket
    ticket: str
    received: dict[str, float] = field(default_factory=dict)
    duplicates: int = 0
    closed: str | None = None

    async def read(self) -> None:
        try:
            while True:
                event = json.loads(await self.ws.recv())
                if event.get("type") != "message.created":
                    continue
                body = event["message"]["body"]
                if not body.startswith("load "):
                    continue
                marker = body.split(" ", 2)[1]
                if marker in self.received:
                    self.duplicates += 1
                else:
                    self.received[marker] = time.monotonic()
        except (Closed, ConnectionError) as exc:
            self.closed = str(exc)


@dataclass
class Tally:
    """Everything the clients saw: latencies of 2xx answers, errors by kind, acknowledged writes."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter = field(default_factory=Counter)
    first_error: dict[str, str] = field(default_factory=dict)
    per_key: Counter = field(default_factory=Counter)
    per_tenant: Counter = field(default_factory=Counter)
    created: list[tuple[str, str, str]] = field(default_factory=list)  # slug, id, title
    messages: list[tuple[str, str, str, str]] = field(default_factory=list)  # slug, id, ticket, body
    patches: list[tuple[str, str, int, str, str]] = field(default_factory=list)  # slug, id, version, category, prio
    sent_at: dict[str, float] = field(default_factory=dict)  # message marker -> when its POST was sent
    acked_markers: dict[str, str] = field(default_factory=dict)  # message marker -> ticket


@dataclass
class Outcome:
    """What one run measured, before the database is read back."""

    tally: Tally
    elapsed: float
    cpu_share: dict[str, float]
    watchers: list[Watcher]
    socket_errors: Counter
    expected: int
    delivered: int
    threads: list[int]


def run(ctx: BenchContext) -> list[Row]:
    """Set up the tenants, run the load against gunicorn, a worker and the relay (as `make run` runs them),
    then check every write."""
    tenants = [_setup_tenant(ctx, i) for i in range(TENANTS)]
    helpers = [_start_worker(ctx), start_relay(ctx)]
    server = ctx.start_web(**RATE_LIMITS, **SHIPPED_SOCKET_CAPS)
    load = os.getloadavg()[0]
    try:
        outcome = asyncio.run(_drive(server, tenants))
    finally:
        server.stop()
        try:
            _settle_assignment(ctx, [t.slug for t in tenants])
        finally:
            for helper in helpers:
                helper.terminate()
            for helper in helpers:
                helper.wait(20)
    found = _verify(ctx, outcome.tally)
    log = _server_log_errors(ctx.work_dir / f"gunicorn-{urlsplit(server.base_url).port}.log")
    return _rows(outcome, found, load, log)


# --- setup -----------------------------------------------------------------------------------

def _setup_tenant(ctx: BenchContext, index: int) -> Tenant:
    """Make a tenant with agents, their keys, a team and rule, and seeded tickets (in process)."""
    slug = f"load{index}-{uuid.uuid4().hex[:6]}"
    admin_key = ctx.signup(slug)
    api = ctx.app.test_client()
    auth = {"Authorization": f"Bearer {admin_key}"}

    def post(path: str, body: dict) -> dict:
        resp = api.post(path, json=body, headers=auth)
        if resp.status_code != 201:
            raise RuntimeError(f"{path}: {resp.status_code} {resp.get_json()}")
        return resp.get_json()

    team = post("/api/v1/teams", {"name": "Support"})
    agent_keys = []
    for a in range(AGENTS):
        user = post("/api/v1/users", {"email": f"agent{a}@{slug}.example", "name": f"Agent {a}", "role": "agent"})
        api.put(f"/api/v1/teams/{team['id']}/members/{user['id']}", headers=auth)
        agent_keys.append(post("/api/v1/api-keys", {"name": f"agent {a}", "role": "agent",
                                                    "user_id": user["id"]})["key"])
    post("/api/v1/assignment-rules", {"name": "all", "team_id": team["id"], "strategy": "least_loaded"})
    integration_key = post("/api/v1/api-keys", {"name": "integration", "role": "admin"})["key"]
    rng = random.Random(index)
    tickets = [post("/api/v1/tickets", {"title": f"{rng.choice(WORDS)} {rng.choice(WORDS)} trouble {i}",
                                        "description": _sentence(rng), "priority": rng.choice(PRIORITIES)})["id"]
               for i in range(SEEDED)]
    return Tenant(slug, [admin_key, integration_key, *agent_keys], agent_keys, tickets, tickets[:WATCHED])


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(12)) + "."


def _start_worker(ctx: BenchContext) -> subprocess.Popen:
    """Start one `flask worker` on the assignment queue and wait until it has registered."""
    conn = redis.Redis.from_url(ctx.redis_url)
    before = len(Worker.all(connection=conn))
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--queues", "assignment"],
                            cwd=ROOT, env=ctx.env(), stdout=subprocess.DEVNULL,
                            stderr=open(ctx.work_dir / "load-worker.log", "wb"))  # noqa: SIM115
    deadline = time.monotonic() + 60
    while len(Worker.all(connection=conn)) <= before:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"the assignment worker did not start; see {ctx.work_dir}")
        time.sleep(0.1)
    return proc


def _settle_assignment(ctx: BenchContext, slugs: list[str], seconds: float = 60) -> None:
    """Wait until the worker has assigned every ticket the load created (the count below reads them then)."""
    from tenants.names import schema_for

    engine = sa.create_engine(ctx.database_url, pool_size=1)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                waiting = sum(conn.execute(sa.text(
                    f'SELECT count(*) - count(assignee_id) FROM "{schema_for(slug)}".tickets '
                    "WHERE title LIKE 'load c%'")).scalar() for slug in slugs)
            if not waiting:
                return
            time.sleep(0.2)
    finally:
        engine.dispose()


# --- the run ---------------------------------------------------------------------------------

async def _drive(server: Server, tenants: list[Tenant]) -> Outcome:
    """Open the sockets, run the clients for DURATION, then wait for every delivery to land."""
    url = urlsplit(server.base_url)
    tally = Tally()
    watchers, socket_errors = await _open_sockets(url.hostname, url.port, tenants)
    readers = [asyncio.create_task(w.read()) for w in watchers]
    pids = server.worker_pids()
    cpu, web_cpu, machine, started = time.process_time(), _cpu_seconds(pids), _machine_ticks(), time.monotonic()
    deadline = started + DURATION
    await asyncio.gather(*(_client(n, tenants[n % TENANTS], url.hostname, url.port, deadline, tally)
                           for n in range(CLIENTS)))
    elapsed = time.monotonic() - started
    busy, total = _machine_ticks()
    cpu_share = {"load generator": (time.process_time() - cpu) / elapsed,
                 "web workers": (_cpu_seconds(pids) - web_cpu) / elapsed,
                 "machine": (busy - machine[0]) / max(total - machine[1], 1)}
    on_ticket = Counter(w.ticket for w in watchers)
    expected = sum(on_ticket[ticket] for ticket in tally.acked_markers.values())

    def delivered() -> int:
        return sum(1 for w in watchers for marker in w.received if marker in tally.acked_markers)

    settle = time.monotonic() + 30
    while delivered() < expected and time.monotonic() < settle:
        await asyncio.sleep(0.1)
    threads = [len(os.listdir(f"/proc/{pid}/task")) for pid in pids]  # with every socket still open
    for w in watchers:
        await w.ws.close()
    for task in readers:
        task.cancel()
    return Outcome(tally, elapsed, cpu_share, watchers, socket_errors, expected, delivered(), threads)


async def _open_sockets(host: str, port: int, tenants: list[Tenant]) -> tuple[list[Watcher], Counter]:
    """Open SOCKETS streams, spread over the tenants' watched tickets and agents' keys, 50 at a time."""
    semaphore = asyncio.Semaphore(50)
    watchers: list[Watcher] = []
    errors: Counter = Counter()

    async def one(i: int) -> None:
        tenant = tenants[i % TENANTS]
        ticket = tenant.watched[(i // TENANTS) % WATCHED]
        key = tenant.agent_keys[(i // TENANTS) % AGENTS]
        async with semaphore:
            try:
                ws = await AsyncWebSocket.connect(host, port, f"/api/v1/tickets/{ticket}/stream?after_seq=0",
                                                  {"Authorization": f"Bearer {key}"})
            except Exception as exc:  # a refused socket is a figure of the row, not the end of it
                errors[_kind(exc)] += 1
                return
        watchers.append(Watcher(ws, ticket))

    await asyncio.gather(*(one(i) for i in range(SOCKETS)))
    return watchers, errors


async def _client(n: int, tenant: Tenant, host: str, port: int, deadline: float, tally: Tally) -> None:
    """Run one closed-loop API client until the deadline on its own keep-alive connection."""
    rng = random.Random(1000 + n)
    key = tenant.keys[(n // TENANTS) % len(tenant.keys)]
    conn = HttpConnection(host, port, {"Authorization": f"Bearer {key}"})
    names = [op for op, (_, weight) in OPS.items() if weight]
    weights = [OPS[op][1] for op in names]
    step = 0

    async def call(op: str, method: str, path: str, body: dict | None = None,
                   headers: dict[str, str] | None = None) -> Response | None:
        tally.per_key[key] += 1
        tally.per_tenant[tenant.slug] += 1
        start = time.monotonic()
        try:
            resp = await conn.request(method, path, body, headers)
        except Exception as exc:  # every failure is counted by kind; the client carries on
            kind = f"{op}: {_kind(exc)}"
            tally.errors[kind] += 1
            tally.first_error.setdefault(kind, repr(exc)[:200])
            return None
        if not 200 <= resp.status < 300:
            kind = f"{op}: {resp.status}"
            tally.errors[kind] += 1
            tally.first_error.setdefault(kind, resp.body[:200].decode(errors="replace").strip())
            return None
        tally.latencies[op].append((time.monotonic() - start) * 1000)
        return resp

    while time.monotonic() < deadline:
        step += 1
        op = rng.choices(names, weights)[0]
        if op == "list":
            await call(op, "GET", "/api/v1/tickets?" + urlencode({**rng.choice(LIST_SHAPES), "limit": 50}))
        elif op == "search":
            q = " ".join(rng.sample(WORDS, rng.choice((1, 1, 2))))
            await call(op, "GET", "/api/v1/tickets?" + urlencode({"q": q, "limit": 50}))
        elif op == "get":
            await call(op, "GET", f"/api/v1/tickets/{rng.choice(tenant.tickets)}")
        elif op == "create":
            title = f"load c{n}-{step} {rng.choice(WORDS)} {rng.choice(WORDS)}"
            body = {"title": title, "description": _sentence(rng), "priority": rng.choice(PRIORITIES),
                    "tags": [rng.choice(WORDS)]}
            headers = {"Idempotency-Key": uuid.uuid4().hex}
            if (resp := await call(op, "POST", "/api/v1/tickets", body, headers)) is None:
                continue
            ticket_id = resp.json()["id"]
            tally.created.append((tenant.slug, ticket_id, title))
            tenant.tickets.append(ticket_id)
            if rng.random() >= REPLAY_SHARE:
                continue
            again = await call("replay", "POST", "/api/v1/tickets", body, headers)
            if again is not None and (again.json()["id"] != ticket_id
                                      or again.headers.get("idempotent-replayed") != "true"):
                tally.errors["replay: not the first answer"] += 1
        elif op == "message":
            ticket_id = rng.choice(tenant.watched)
            marker = f"m{n}-{step}"
            text = f"load {marker} {_sentence(rng)}"
            tally.sent_at[marker] = time.monotonic()
            resp = await call(op, "POST", f"/api/v1/tickets/{ticket_id}/messages", {"body": text},
                              {"Idempotency-Key": uuid.uuid4().hex})
            if resp is not None:
                tally.messages.append((tenant.slug, resp.json()["id"], ticket_id, text))
                tally.acked_markers[marker] = ticket_id
        elif op == "patch":
            ticket_id = rng.choice(tenant.tickets)
            change = {"priority": rng.choice(PRIORITIES), "category": f"load-p{n}-{step}"}
            if (resp := await call(op, "PATCH", f"/api/v1/tickets/{ticket_id}", change)) is not None:
                tally.patches.append((tenant.slug, ticket_id, resp.json()["version"], change["category"],
                                      change["priority"]))
    conn.close()


def _cpu_seconds(pids: list[int]) -> float:
    """Return the CPU time (user + system) the processes have used so far."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _machine_ticks() -> tuple[int, int]:
    """Return the machine's busy and total CPU ticks so far (all cores; idle and iowait are not busy)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)


def _kind(exc: BaseException) -> str:
    return type(exc).__name__ + (f" {exc.status}" if hasattr(exc, "status") else "")


# --- afterwards ------------------------------------------------------------------------------

def _verify(ctx: BenchContext, tally: Tally) -> Counter:
    """Read back every acknowledged write from Postgres; count what is found, wrong or doubled.

    A PATCH is found by its audit row (each one writes its own unique category); the ticket must
    also hold what its last acknowledged PATCH wrote, and no two PATCHes may share a version.
    """
    from tenants.names import schema_for

    writes: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for kind, rows in (("created", tally.created), ("messages", tally.messages), ("patches", tally.patches)):
        for row in rows:
            writes[row[0]][kind].append(row)
    found: Counter = Counter()
    engine = sa.create_engine(ctx.database_url, pool_size=1)
    with engine.connect() as conn:
        for slug, mine in writes.items():
            schema = schema_for(slug)

            def rows(sql: str, ids: list[str] | None = None, schema: str = schema) -> list:
                params = {"ids": [uuid.UUID(i) for i in ids]} if ids is not None else {}
                return conn.execute(sa.text(sql.replace("SCHEMA", f'"{schema}"')), params).all()

            created = mine["created"]
            stored = dict(rows("SELECT id::text, title FROM SCHEMA.tickets WHERE id = ANY(:ids)",
                               [r[1] for r in created]))
            found["created"] += sum(stored.get(r[1]) == r[2] for r in created)
            (titles, distinct, assigned), = rows(
                "SELECT count(*), count(DISTINCT title), count(assignee_id) FROM SCHEMA.tickets "
                "WHERE title LIKE 'load c%'")
            found["create doubled"] += titles - distinct
            found["created without a 2xx"] += distinct - len(created)
            found["created assigned"] += assigned
            messages = mine["messages"]
            stored = {i: (t, b) for i, t, b in rows(
                "SELECT id::text, ticket_id::text, body FROM SCHEMA.messages WHERE id = ANY(:ids)",
                [r[1] for r in messages])}
            found["messages"] += sum(stored.get(r[1]) == (r[2], r[3]) for r in messages)
            audited = set(rows("SELECT entity_id::text, after->>'category' FROM SCHEMA.audit_log "
                               "WHERE entity = 'ticket' AND action = 'updated' AND after->>'category' LIKE 'load-p%'"))
            found["patches"] += sum((r[1], r[3]) in audited for r in mine["patches"])
            acks: dict[str, list] = defaultdict(list)
            for _, ticket_id, version, category, priority in mine["patches"]:
                acks[ticket_id].append((version, category, priority))
            final = {i: (c, p, v) for i, c, p, v in rows(
                "SELECT id::text, category, priority, version FROM SCHEMA.tickets WHERE id = ANY(:ids)", list(acks))}
            for ticket_id, seen in acks.items():
                versions = [v for v, _, _ in seen]
                found["patch versions acknowledged twice"] += len(versions) - len(set(versions))
                version, category, priority = max(seen)
                category_now, priority_now, version_now = final[ticket_id]
                found["patched tickets"] += 1
                found["patched tickets as last acknowledged"] += (
                    (category_now, priority_now) == (category, priority) and version_now >= version)
    engine.dispose()
    return found


def _server_log_errors(path: Path) -> tuple[int, str]:
    """Count tracebacks and ERROR lines in the web server's log; return the count and the first."""
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    bad = [line for line in lines if re.search(r"Traceback|\[ERROR\]|\bERROR\b", line)]
    return len(bad), bad[0][:160] if bad else ""


def _rows(outcome: Outcome, found: Counter, load: float, log: tuple[int, str]) -> list[Row]:
    tally, elapsed, watchers = outcome.tally, outcome.elapsed, outcome.watchers
    ops = sum(len(v) for v in tally.latencies.values()) + sum(tally.errors.values())
    errors = sum(tally.errors.values())
    setting = (f"{CLIENTS} clients x {elapsed:.0f} s, {TENANTS} tenants, {TENANTS * (AGENTS + 2)} keys, "
               f"{len(watchers)} sockets; gunicorn.conf.py as shipped (2 workers; threads at the end "
               f"{outcome.threads})")
    per_minute = 60 / elapsed
    cpu = outcome.cpu_share
    rows = [Row("load: API operations per second", ops / elapsed, "ops/s", aim="",
                note=f"{setting}; CPU: load generator {cpu['load generator']:.0%} of a core, web workers "
                     f"{cpu['web workers']:.0%} of a core, the whole machine {cpu['machine']:.0%} busy (load "
                     f"average {load:.1f} at start, other work included); busiest key "
                     f"{max(tally.per_key.values()) * per_minute:,.0f}/min, "
                     f"busiest tenant {max(tally.per_tenant.values()) * per_minute:,.0f}/min (limits set to "
                     f"{RATE_LIMITS['RATE_LIMIT_PER_MINUTE']} / {RATE_LIMITS['RATE_LIMIT_PER_TENANT_PER_MINUTE']}, "
                     "shipped 1200 / 6000)"),
            Row("load: errors (non-2xx answers and client exceptions)", errors, "errors", aim="0",
                note="; ".join(f"{k} x{v} ({tally.first_error.get(k, '')})" for k, v in tally.errors.most_common())
                or "none")]
    for op, (label, _) in OPS.items():
        times = tally.latencies.get(op, [])
        failed = sum(v for k, v in tally.errors.items() if k.startswith(f"{op}:"))
        rows.append(Row(f"load: {label} p50", percentile(times, 50), "ms",
                        note=f"{len(times)} ok, {failed} failed, {len(times) / elapsed:.0f}/s"))
        rows.append(Row(f"load: {label} p99", percentile(times, 99), "ms"))
    latencies = [(t - tally.sent_at[m]) * 1000 for w in watchers for m, t in w.received.items()
                 if m in tally.acked_markers]
    closed = Counter(w.closed for w in watchers if w.closed)
    socket_note = (f"{len(watchers)} of {SOCKETS} sockets opened"
                   + "".join(f", refused {k} x{v}" for k, v in outcome.socket_errors.items())
                   + "".join(f", dropped '{k}' x{v}" for k, v in closed.items())
                   + f"; {sum(w.duplicates for w in watchers)} duplicates; {len(tally.acked_markers)} messages, "
                     f"each to every socket on its ticket")
    acked = len(tally.created) + len(tally.messages) + len(tally.patches)
    rows += [
        Row("load: socket deliveries received", outcome.delivered, "events", "expected", outcome.expected,
            aim="ratio 1.00", note=socket_note),
        Row("load: delivery POST sent -> socket received p50", percentile(latencies, 50), "ms"),
        Row("load: delivery POST sent -> socket received p99", percentile(latencies, 99), "ms"),
        Row("load: acknowledged writes found in Postgres", found["created"] + found["messages"] + found["patches"],
            "writes", "acknowledged", acked, aim="ratio 1.00",
            note=f"tickets {found['created']}/{len(tally.created)}, messages {found['messages']}/"
                 f"{len(tally.messages)}, PATCHes (audit rows) {found['patches']}/{len(tally.patches)}; tickets "
                 f"holding their last acknowledged PATCH {found['patched tickets as last acknowledged']}/"
                 f"{found['patched tickets']}; versions acknowledged twice "
                 f"{found['patch versions acknowledged twice']}; retried creates doubled {found['create doubled']}; "
                 f"created without a 2xx {found['created without a 2xx']}; created tickets assigned by the worker "
                 f"{found['created assigned']}; server log errors {log[0]} {log[1]}"),
    ]
    return rows
