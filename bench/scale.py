"""Ten thousand tenants on one node: provisioning, traffic, the memory of every PostgreSQL backend,
and `flask tenants migrate` over every schema.

Not part of the default `make bench`: it takes about half an hour and ~7 GB of disk, and runs as
`make bench-scale` (`BENCH_SCALE_TENANTS`, default 10,000; `BENCH_SCALE_SECONDS` per traffic run,
default 60). Its servers' data is deleted when it ends.

- Provisioning: signups (registry row, schema at head, admin, key) from 4 processes with a
  progress bar; the median time of one signup around the 1,000th and the 10,000th tenant, beside
  the same schema built by raw SQL at that point.
- Traffic: the product in gunicorn as shipped; a hot set (the first 100 tenants) gets 80 % of the
  requests and the rest is spread over every tenant; one wrk lists tickets, another creates them,
  at once, each with its own p50/p95.
- Memory per connection: traffic spread evenly over every tenant (the worst case for PostgreSQL's
  per-connection caches), through 4 gunicorn processes, under each way of bounding it: none;
  connections recycled by age (`DB_POOL_RECYCLE`); closed after serving `DB_CONNECTION_MAX_TENANTS`
  tenants; and tenants routed to processes by affinity (each process's pool sees a quarter of
  them). A sampler reads every backend's RSS (and private memory, and PSS: shared memory counted
  once) every 2 s; the series go to `bench/results/scale_memory.json`.
- The relay's probe of every schema (one statement per schema, pipelined) beside the old single
  UNION ALL per chunk, and `flask tenants migrate` over every schema with one new column and one
  new index (a copy of the code with one more revision), beside the same SQL by raw SQL.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import psycopg

from bench.common import ROOT, BenchContext, Row, format_table, median

TENANTS = int(os.environ.get("BENCH_SCALE_TENANTS", "10000"))
SECONDS = int(os.environ.get("BENCH_SCALE_SECONDS", "60"))
HOT, HOT_SHARE = 100, 0.8
PROVISIONERS = 4
SAMPLE_EVERY = 2.0
RAW_SAMPLE = 20
BOUND = "500"  # the shipped DB_CONNECTION_MAX_TENANTS


def run(ctx: BenchContext) -> list[Row]:
    rows, keys = _provision(ctx)
    _show(rows)
    keys_file = ctx.work_dir / "keys.txt"
    keys_file.write_text("\n".join(keys) + "\n")
    memory = PgMemory.of(ctx)
    series: dict[str, list[dict]] = {}
    out = ROOT / "bench" / "results" / "scale_memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    for phase in (lambda: _traffic_mix(ctx, keys_file, memory, series),
                  lambda: _memory_options(ctx, keys_file, memory, series),
                  lambda: _probe(ctx),
                  lambda: _migrate(ctx, memory, series)):
        try:
            found = phase()
        except Exception:  # one phase failing must not cost the figures of the others
            print(traceback.format_exc(), flush=True)
            continue
        _show(found)
        rows += found
        out.write_text(json.dumps(series))
    return rows


def _show(rows: list[Row]) -> None:
    print(format_table(rows), flush=True)


# --- provisioning ----------------------------------------------------------------------------

_app = None


def _init_provisioner(database_url: str, redis_url: str) -> None:
    global _app
    from app import create_app

    _app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": redis_url, "PASSWORD_HASH_FAST": True,
                       "SECRET_KEY": "bench", "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 1, "max_overflow": 0}})


def _sign_up(slug: str) -> tuple[str, float]:
    from app.signup.services import sign_up

    start = time.perf_counter()
    with _app.app_context():
        result = sign_up(name=slug, slug=slug, admin_email=f"admin@{slug}.example", admin_password="benchmark-pw")
    return result.api_key, (time.perf_counter() - start) * 1000


def _provision(ctx: BenchContext) -> tuple[list[Row], list[str]]:
    from tqdm import tqdm

    keys: list[str] = []
    latencies: list[float] = []
    marks = sorted({min(1000, TENANTS), TENANTS})
    rows: list[Row] = []
    started = time.perf_counter()
    with ProcessPoolExecutor(PROVISIONERS, mp_context=get_context("forkserver"), initializer=_init_provisioner,
                             initargs=(ctx.database_url, ctx.redis_url)) as pool, \
            tqdm(total=TENANTS, unit="tenant", desc="provisioning") as bar:
        done = 0
        for mark in marks:
            futures = [pool.submit(_sign_up, f"scale-{i}") for i in range(done, mark)]
            for future in as_completed(futures):
                key, ms = future.result()
                keys.append(key)
                latencies.append(ms)
                bar.update()
            done = mark
            window = latencies[-min(100, len(latencies)):]
            raw = _raw_schemas_ms(ctx)
            rows.append(Row(f"provisioning one tenant at {mark:,} tenants (median of last 100)", median(window), "ms",
                            "same schema + tables by raw SQL there", median(raw), aim="flat as tenants grow",
                            note=f"{PROVISIONERS} processes: {mark / (time.perf_counter() - started):.0f} tenants/s "
                                 f"so far; p95 {sorted(window)[int(len(window) * 0.95) - 1]:.0f} ms"))
    size = _database_size(ctx)
    rows.append(Row(f"database size at {TENANTS:,} tenants", size / 2**20, "MiB",
                    note=f"{size / TENANTS / 2**20:.2f} MiB per tenant; {_relations(ctx):,} relations"))
    return rows, keys


def _raw_dsn(ctx: BenchContext) -> str:
    return ctx.database_url.replace("postgresql+psycopg://", "postgresql://")


def _raw_schemas_ms(ctx: BenchContext) -> list[float]:
    """Build RAW_SAMPLE schemas at head by raw SQL, timing each; then drop them."""
    from tenants.migrations import tenant_head_ddl

    ddl, times = tenant_head_ddl(), []
    with psycopg.connect(_raw_dsn(ctx)) as conn:
        for i in range(RAW_SAMPLE):
            start = time.perf_counter()
            with conn.transaction():
                conn.execute(f'create schema "raw_scale_{i}"')
                conn.execute(f'set local search_path to "raw_scale_{i}"')
                conn.execute(ddl)
            times.append((time.perf_counter() - start) * 1000)
        for i in range(RAW_SAMPLE):
            conn.execute(f'drop schema "raw_scale_{i}" cascade')
            conn.commit()
    return times


def _database_size(ctx: BenchContext) -> int:
    with psycopg.connect(_raw_dsn(ctx)) as conn:
        return conn.execute("select pg_database_size(current_database())").fetchone()[0]


def _relations(ctx: BenchContext) -> int:
    with psycopg.connect(_raw_dsn(ctx)) as conn:
        return conn.execute("select count(*) from pg_class").fetchone()[0]


# --- PostgreSQL's memory -----------------------------------------------------------------------


@dataclass
class PgMemory:
    """Reads the memory of every process of the embedded PostgreSQL server from /proc."""

    postmaster: int
    samples: list[dict] = field(default_factory=list)

    @classmethod
    def of(cls, ctx: BenchContext) -> PgMemory | None:
        pid_file = ctx.work_dir / "postgres" / "postmaster.pid"
        return cls(int(pid_file.read_text().split()[0])) if pid_file.exists() else None

    def sample(self, at: float) -> dict:
        children = subprocess.run(["pgrep", "-P", str(self.postmaster)], capture_output=True, text=True).stdout.split()
        backends, pss = {}, 0
        for pid in [self.postmaster, *map(int, children)]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
                command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue  # it ended between the listing and the read
            fields = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines()
                      if line.startswith(("VmRSS:", "RssAnon:"))}
            pss += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
            if "127.0.0.1(" in command or "[local]" in command:  # a client backend, not a server process
                backends[pid] = (fields["VmRSS"] // 1024, fields["RssAnon"] // 1024)
        return {"t": round(at, 1), "pss_mb": pss // 1024, "backends": backends,
                "rss_mb": sum(r for r, _ in backends.values()), "anon_mb": sum(a for _, a in backends.values())}

    def watch(self, label: str, series: dict[str, list[dict]]) -> threading.Event:
        """Sample every SAMPLE_EVERY seconds into series[label] until the returned event is set."""
        stop, start, found = threading.Event(), time.monotonic(), series.setdefault(label, [])

        def loop() -> None:
            while not stop.wait(SAMPLE_EVERY):
                found.append(self.sample(time.monotonic() - start))

        threading.Thread(target=loop, daemon=True).start()
        return stop


def _memory_note(samples: list[dict]) -> tuple[float, str]:
    last = samples[-1]
    biggest = max((anon for s in samples for _, anon in s["backends"].values()), default=0)
    every = max(1, round(10 / SAMPLE_EVERY))
    curve = ", ".join(str(s["pss_mb"]) for s in samples[every - 1::every])
    return last["pss_mb"], (f"{len(last['backends'])} backends: RSS {last['rss_mb']} MiB in all, "
                            f"private {last['anon_mb']} MiB, most private in one backend {biggest} MiB; "
                            f"PSS every 10 s: {curve}")


# --- traffic -----------------------------------------------------------------------------------

LUA = """
local keys, count = {}, 0
counter = 0
setup = function(thread) counter = counter + 1; thread:set("id", counter) end
init = function(args)
  for line in io.lines("KEYS") do
    count = count + 1
    if (count - 1) % STEP == OFFSET then keys[#keys + 1] = line end
  end
  math.randomseed(os.time() * 1000 + (id or 0) * 7919 + OFFSET)
end
request = function()
  local i
  if math.random() < HOT_SHARE then i = math.random(1, math.min(HOT, #keys)) else i = math.random(1, #keys) end
  local method, path, body = "GET", "/api/v1/tickets?limit=50", nil
  if math.random() < CREATE_SHARE then
    method, path, body = "POST", "/api/v1/tickets", '{"title": "Printer on fire", "priority": "high"}'
  end
  return wrk.format(method, path, {["Authorization"] = "Bearer " .. keys[i],
                                   ["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, latency:percentile(50),
                         latency:percentile(95), latency:percentile(99), summary.errors.status))
end
"""


@dataclass
class Load:
    requests: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    seconds: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def _wrk(ctx: BenchContext, url: str, keys_file: Path, *, create_share: float, hot_share: float,
         connections: int, step: int = 1, offset: int = 0) -> subprocess.Popen:
    script = (LUA.replace("KEYS", str(keys_file)).replace("STEP", str(step))
              .replace("OFFSET", str(offset)).replace("HOT_SHARE", str(hot_share)).replace("HOT", str(HOT))
              .replace("CREATE_SHARE", str(create_share)))
    path = ctx.work_dir / f"scale-{time.monotonic_ns()}.lua"
    path.write_text(script)
    return subprocess.Popen(["wrk", "-t", "1", "-c", str(connections), "-d", f"{SECONDS}s", "-s", str(path), url],
                            stdout=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> Load:
    out, _ = proc.communicate()
    requests, p50, p95, p99, errors = next(line for line in out.splitlines() if line.startswith("RESULT")).split()[1:]
    return Load(int(requests), int(p50) / 1000, int(p95) / 1000, int(p99) / 1000, int(errors), SECONDS)


def _traffic_mix(ctx: BenchContext, keys_file: Path, memory: PgMemory | None,
                 series: dict[str, list[dict]]) -> list[Row]:
    server = ctx.start_web(workers=2)
    try:
        stop = memory.watch("mix", series) if memory else None
        lister = _wrk(ctx, server.base_url, keys_file, create_share=0, hot_share=HOT_SHARE, connections=12)
        creator = _wrk(ctx, server.base_url, keys_file, create_share=1, hot_share=HOT_SHARE, connections=4)
        listed, created = _result(lister), _result(creator)
        if stop:
            stop.set()
    finally:
        server.stop()
    mix = f"{HOT} hot tenants get {HOT_SHARE:.0%}, the rest spread over all {TENANTS:,}"
    rows = [
        Row(f"list at {TENANTS:,} tenants: GET /tickets?limit=50, p50", listed.p50_ms, "ms",
            note=f"p95 {listed.p95_ms:.1f} ms, p99 {listed.p99_ms:.1f} ms, {listed.rps:.0f} req/s, "
                 f"non-2xx {listed.errors}; {mix}"),
        Row(f"create at {TENANTS:,} tenants: POST /tickets, p50", created.p50_ms, "ms",
            note=f"p95 {created.p95_ms:.1f} ms, p99 {created.p99_ms:.1f} ms, {created.rps:.0f} req/s, "
                 f"non-2xx {created.errors}; at once with the list"),
    ]
    if memory and series.get("mix"):
        pss, note = _memory_note(series["mix"])
        rows.append(Row("PostgreSQL memory after the mix (PSS, all processes)", pss, "MiB",
                        note=f"DB_CONNECTION_MAX_TENANTS={BOUND}; {note}"))
    return rows


# The ways of bounding what a connection caches, each under the same even spread over every tenant.
OPTIONS = {
    "none": ({"DB_CONNECTION_MAX_TENANTS": "0"}, False),
    "age: DB_POOL_RECYCLE=15": ({"DB_CONNECTION_MAX_TENANTS": "0", "DB_POOL_RECYCLE": "15"}, False),
    "affinity: tenant -> process": ({"DB_CONNECTION_MAX_TENANTS": "0"}, True),
    "tenants: DB_CONNECTION_MAX_TENANTS=100": ({"DB_CONNECTION_MAX_TENANTS": "100"}, False),
    f"tenants: DB_CONNECTION_MAX_TENANTS={BOUND}": ({"DB_CONNECTION_MAX_TENANTS": BOUND}, False),
}
PROCESSES = 4


def _memory_options(ctx: BenchContext, keys_file: Path, memory: PgMemory | None,
                    series: dict[str, list[dict]]) -> list[Row]:
    rows = []
    for label, (env, affinity) in OPTIONS.items():
        servers = [ctx.start_web(workers=1, **env) for _ in range(PROCESSES)]
        try:
            time.sleep(1)
            before = memory.sample(0) if memory else None
            stop = memory.watch(label, series) if memory else None
            loads = [_wrk(ctx, s.base_url, keys_file, create_share=0.3, hot_share=0, connections=2,
                          step=PROCESSES if affinity else 1, offset=i if affinity else 0)
                     for i, s in enumerate(servers)]
            results = [_result(p) for p in loads]
            if stop:
                stop.set()
        finally:
            for server in servers:
                server.stop()
        requests = sum(r.requests for r in results)
        latency = f"p50 {median([r.p50_ms for r in results]):.1f} ms, p95 {max(r.p95_ms for r in results):.1f} ms"
        if memory and series.get(label):
            pss, note = _memory_note(series[label])
            rows.append(Row(f"PG memory, even spread, {label}", pss, "MiB",
                            "before the run", before["pss_mb"], aim="flat",
                            note=f"{note}; {requests / SECONDS:.0f} req/s, {latency}, "
                                 f"non-2xx {sum(r.errors for r in results)}"))
        else:
            rows.append(Row(f"even spread, {label}", requests / SECONDS, "req/s", note=latency))
    return rows


# --- the relay's probe, and migrate ---------------------------------------------------------------


def _probe(ctx: BenchContext) -> list[Row]:
    from tenants import active_tenants, tenants_having
    from tenants.names import checked_schema

    with ctx.app.app_context():
        tenants = active_tenants()
        condition = "processed_at is null and created_at < now() - make_interval(secs => :age)"
        start = time.perf_counter()
        tenants_having(tenants, "outbox", condition, {"age": 3})
        pipelined = time.perf_counter() - start
    schemas = [checked_schema(t.schema) for t in tenants]
    with psycopg.connect(_raw_dsn(ctx)) as conn:
        start = time.perf_counter()
        for i in range(0, len(schemas), 200):
            union = " union all ".join(
                f'select {n} where exists (select 1 from "{s}".outbox where processed_at is null '
                "and created_at < now() - make_interval(secs => 3))" for n, s in enumerate(schemas[i:i + 200]))
            conn.execute(union).fetchall()
            conn.rollback()  # as the relay did: a chunk's locks go with its transaction
        union_s = time.perf_counter() - start
    return [Row(f"relay probe of {len(schemas):,} schemas, one statement each, pipelined", pipelined * 1000, "ms",
                "one UNION ALL per 200 schemas", union_s * 1000, aim="no statement spans two tenants")]


BENCH_REVISION = '''"""Bench only: one new column and one new index in every tenant schema."""

import sqlalchemy as sa
from alembic import op

revision = "t9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("bench_note", sa.Text(), nullable=True))
    op.create_index("ix_tickets_bench_note", "tickets", ["bench_note"])


def downgrade() -> None:
    op.drop_index("ix_tickets_bench_note", table_name="tickets")
    op.drop_column("tickets", "bench_note")
'''


def _migrate(ctx: BenchContext, memory: PgMemory | None, series: dict[str, list[dict]]) -> list[Row]:
    """Time `flask tenants migrate` over every schema, run from a copy of the code with one more revision."""
    from tenants.migrations import head

    copy = ctx.work_dir / "code"
    for part in ("app", "tenants", "migrations", "templates"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "wsgi.py", copy / "wsgi.py")
    revision = copy / "migrations" / "tenant" / "versions" / "9001_bench.py"
    revision.write_text(BENCH_REVISION.format(head=head("tenant")))
    command = [sys.executable, "-m", "flask", "--app", "wsgi:app", "tenants", "migrate", "--workers", "4"]
    env = ctx.env(PYTHONPATH=str(copy))
    rows = []
    for what in ("one new column + index", "again (all at head: resume)"):
        stop = memory.watch(f"migrate, {what}", series) if memory else None
        start = time.perf_counter()
        done = subprocess.run(command, cwd=copy, env=env, stdout=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - start
        if stop:
            stop.set()
        if done.returncode != 0:
            raise RuntimeError(f"migrate failed:\n{done.stdout}")
        samples = series.get(f"migrate, {what}") or [{"backends": {}}]
        biggest = max((anon for sample in samples for _, anon in sample["backends"].values()), default=0)
        rows.append(Row(f"flask tenants migrate, {TENANTS:,} tenants, {what}", seconds, "s",
                        note=f"{seconds / TENANTS * 1000:.1f} ms per tenant, 4 processes: "
                             f"{done.stdout.strip().splitlines()[-1]}; most private in one backend {biggest} MiB"))
    rows[0].baseline_name, rows[0].baseline_value = "same SQL, raw, one connection (extrapolated)", _raw_delta_s(ctx)
    return rows


def _raw_delta_s(ctx: BenchContext) -> float:
    """Time the same column and index by raw SQL on 10 x RAW_SAMPLE fresh schemas; extrapolate to TENANTS."""
    from tenants.migrations import tenant_head_ddl

    sample = RAW_SAMPLE * 10
    with psycopg.connect(_raw_dsn(ctx)) as conn:
        for i in range(sample):
            conn.execute(f'create schema "raw_mig_{i}"')
            conn.execute(f'set local search_path to "raw_mig_{i}"')
            conn.execute(tenant_head_ddl())
            conn.commit()
        start = time.perf_counter()
        for i in range(sample):
            conn.execute(f'alter table "raw_mig_{i}".tickets add column bench_note text')
            conn.execute(f'create index on "raw_mig_{i}".tickets (bench_note)')
            conn.commit()
        seconds = time.perf_counter() - start
        for i in range(sample):
            conn.execute(f'drop schema "raw_mig_{i}" cascade')
            conn.commit()
    return seconds / sample * TENANTS
