"""Foundation figures: the bare ceilings, tenant provisioning and migrating many tenants."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg

from bench.common import ROOT, BenchContext, Row, median

BARE_ROWS = 10_000


def _raw_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def measure_baselines(ctx: BenchContext) -> list[Row]:
    """Measure the bare hello / one-INSERT / 1-row and 50-row SELECT endpoints under the product's gunicorn."""
    with psycopg.connect(_raw_dsn(ctx.database_url), autocommit=True) as conn:
        conn.execute("create table if not exists bench_bare (id bigint generated always as identity primary key,"
                     " title text not null, created_at timestamptz not null default now())")
        conn.execute("create index if not exists bench_bare_created on bench_bare (created_at)")
        conn.execute(f"insert into bench_bare (title) select 'row ' || g from generate_series(1, {BARE_ROWS}) g")
    server = ctx.start_web("bench.bare_app:app")
    hello = ctx.wrk(server.base_url + "/hello")
    insert = ctx.wrk(server.base_url + "/insert", method="POST")
    select1 = ctx.wrk(server.base_url + "/select1")
    select = ctx.wrk(server.base_url + "/select50")
    server.stop()
    ctx.baselines.update(hello_rps=hello.rps, insert_rps=insert.rps, select1_rps=select1.rps,
                         select50_rps=select.rps, hello_p99_ms=hello.p99_ms)
    return [
        Row("bare Flask hello", hello.rps, "req/s", aim="ceiling", note=f"p99 {hello.p99_ms:.1f} ms"),
        Row("bare Flask one INSERT + COMMIT", insert.rps, "req/s", aim="ceiling",
            note=f"p99 {insert.p99_ms:.1f} ms"),
        Row("bare Flask 1-row SELECT by primary key", select1.rps, "req/s", aim="ceiling",
            note=f"p99 {select1.p99_ms:.1f} ms"),
        Row("bare Flask 50-row indexed SELECT", select.rps, "req/s", aim="ceiling",
            note=f"p99 {select.p99_ms:.1f} ms"),
    ]


def measure_provisioning(ctx: BenchContext, runs: int = 50) -> list[Row]:
    """Time tenant provisioning (registry row + schema at head) beside the same DDL as raw SQL."""
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.migrations import tenant_head_ddl
    from tenants.provisioning import create_tenant, new_tenant_ref

    ddl = tenant_head_ddl()
    product, raw = [], []
    with ctx.app.app_context():
        for i in range(runs):
            ref = new_tenant_ref(f"prov-{os.getpid()}-{i}")
            start = time.perf_counter()
            with tenant_context(ref):
                create_tenant(ref.slug)
                db.session.commit()
            product.append((time.perf_counter() - start) * 1000)
    with psycopg.connect(_raw_dsn(ctx.database_url)) as conn:
        for i in range(runs):
            start = time.perf_counter()
            with conn.transaction():
                _raw_schema(conn, f"raw_{os.getpid()}_{i}", ddl)
            raw.append((time.perf_counter() - start) * 1000)
    return [Row("tenant provisioning, median of 50", median(product), "ms",
                "same schema + tables by raw SQL", median(raw), aim="well under 1000 ms")]


def _raw_schema(conn: psycopg.Connection, schema: str, ddl: str) -> None:
    """Create `schema` and run `ddl` in it, as raw SQL (the caller holds the transaction)."""
    conn.execute(f'create schema "{schema}"')
    conn.execute(f'set local search_path to "{schema}"')
    conn.execute(ddl)


def measure_migrate(ctx: BenchContext, tenants: int) -> list[Row]:
    """Time `flask tenants migrate` from the first revision to head over many tenant schemas."""
    from tenants.migrations import tenant_ddl
    from tenants.names import schema_for

    first = tenant_ddl("t0001")
    delta = tenant_ddl("t0001:head")
    prefix = f"mig{os.getpid()}"
    with psycopg.connect(_raw_dsn(ctx.database_url)) as conn:
        for i in range(tenants):
            slug = f"{prefix}-{i}"
            with conn.transaction():
                _raw_schema(conn, schema_for(slug), first)
                conn.execute("insert into public.tenants (id, slug, name, schema_name, status) "
                             "values (gen_random_uuid(), %s, %s, %s, 'active')", (slug, slug, schema_for(slug)))
    command = [sys.executable, "-m", "flask", "--app", "wsgi:app", "tenants", "migrate", "--no-progress"]
    migrate_s, summary = _timed(command, ctx)
    resume_s, resume_summary = _timed(command, ctx)
    # Baseline: the same upgrade SQL applied by raw SQL, schema after schema, on one connection.
    with psycopg.connect(_raw_dsn(ctx.database_url)) as conn:
        for i in range(tenants):
            with conn.transaction():
                _raw_schema(conn, f"raw_mig_{os.getpid()}_{i}", first)
        start = time.perf_counter()
        for i in range(tenants):
            with conn.transaction():
                conn.execute(f'set local search_path to "raw_mig_{os.getpid()}_{i}"')
                conn.execute(delta)
        raw_s = time.perf_counter() - start
    return [
        Row(f"flask tenants migrate, {tenants} tenants t0001->head", migrate_s, "s",
            "same upgrade SQL, raw, one connection", raw_s, note=f"4 worker processes: {summary}"),
        Row("flask tenants migrate again (all at head: resume)", resume_s, "s", note=resume_summary),
    ]


def _timed(command: list[str], ctx: BenchContext) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=ctx.env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - start, done.stdout.strip().splitlines()[-1]


def run(ctx: BenchContext) -> list[Row]:
    rows = measure_baselines(ctx)
    rows += measure_provisioning(ctx)
    rows += measure_migrate(ctx, int(os.environ.get("BENCH_MIGRATE_TENANTS", "1000")))
    return rows
