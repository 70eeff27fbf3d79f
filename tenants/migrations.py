"""Alembic, in two tracks: `public` (the registry) and `tenant` (run once per tenant schema).

Tenant migrations are written without schema names and run with the tenant's schema alone on
the `search_path` (`SET LOCAL`, inside the migration's transaction), each schema keeping its own
`alembic_version`. Provisioning does not replay the history: it runs the head DDL that Alembic
renders in offline mode, once per process, as one statement batch in the signup transaction.
"""

from __future__ import annotations

import io
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from tenants.database import keepalive_args
from tenants.names import checked_schema
from tenants.probe import SCHEMA_MARK, ask_each

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Alembic's `op` and `context` are module-wide proxies set for the run in progress: two runs at once in
# one process (two first signups rendering the tenant DDL on two threads) use each other's and fail.
_ONE_RUN = threading.Lock()


def alembic_config(track: str, **attributes: object) -> Config:
    """Return an Alembic config for `track` ("public" or "tenant") with runtime attributes."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR / track))
    cfg.attributes.update(attributes)
    return cfg


@lru_cache(maxsize=2)
def head(track: str) -> str:
    """Return the head revision of a track."""
    return ScriptDirectory.from_config(alembic_config(track)).get_current_head()


@lru_cache(maxsize=8)
def tenant_ddl(revisions: str = "head") -> str:
    """Return the tenant-track SQL for `revisions` ("head", "t0001", "t0001:head"), rendered offline."""
    buffer = io.StringIO()
    cfg = alembic_config("tenant", output_buffer=buffer)
    with _ONE_RUN:
        command.upgrade(cfg, revisions, sql=True)
    return buffer.getvalue()


def tenant_head_ddl() -> str:
    """Return the SQL that builds an empty tenant schema at head."""
    return tenant_ddl("head")


def upgrade_public(engine: sa.Engine) -> None:
    """Bring the `public` schema to head."""
    with engine.begin() as conn, _ONE_RUN:
        command.upgrade(alembic_config("public", connection=conn), "head")


def tenant_revision(conn: sa.Connection, schema: str) -> str | None:
    """Return the revision a tenant schema is at (None if it has none)."""
    schema = checked_schema(schema)
    ctx = MigrationContext.configure(conn, opts={"version_table_schema": schema})
    return ctx.get_current_revision()


def upgrade_tenant(engine: sa.Engine, schema: str) -> bool:
    """Bring one tenant schema to head; return False if it was there already (resumable)."""
    schema = checked_schema(schema)
    target = head("tenant")
    with engine.begin() as conn:
        # Serialise concurrent migrators of the same schema.
        conn.execute(sa.text("select pg_advisory_xact_lock(hashtext(:s))"), {"s": schema})
        if tenant_revision(conn, schema) == target:
            return False
        with _ONE_RUN:
            command.upgrade(alembic_config("tenant", connection=conn, schema=schema), "head")
    return True


@dataclass
class MigrationReport:
    upgraded: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def schemas_at(engine: sa.Engine, schemas: list[str], revision: str) -> set[str]:
    """Return which of `schemas` are at `revision`, reading their version tables a chunk per round trip.

    This is what makes a re-run resume cheaply: schemas already at head never reach a worker.
    """
    schemas = [checked_schema(s) for s in schemas]
    with engine.connect() as conn:
        versioned = set(conn.execute(sa.text(
            "select table_schema from information_schema.tables where table_name = 'alembic_version'"
        )).scalars())
        conn.rollback()
    answers, _unreadable = ask_each(engine, [s for s in schemas if s in versioned],
                                    f"select version_num::text from {SCHEMA_MARK}.alembic_version")
    return {schema for schema, version in answers.items() if version == revision}


_worker_urls: dict[str, str] = {}
_worker_engines: dict[str, sa.Engine] = {}
_worker_served: dict[str, int] = {}
# Schemas one worker connection migrates before it is replaced: PostgreSQL keeps every relation a
# connection touched cached until it ends (as `DB_CONNECTION_MAX_TENANTS` does for the app's pools).
SCHEMAS_PER_CONNECTION = 100


def _init_worker(urls: dict[str, str]) -> None:
    _worker_urls.update(urls)


def _upgrade_in_worker(shard: str, schema: str) -> bool:
    engine = _worker_engines.get(shard)
    if engine is None:  # one connection per process and shard
        engine = _worker_engines[shard] = sa.create_engine(_worker_urls[shard], pool_size=1, max_overflow=0,
                                                           connect_args=keepalive_args())
    try:
        return upgrade_tenant(engine, schema)
    finally:
        _worker_served[shard] = _worker_served.get(shard, 0) + 1
        if _worker_served[shard] % SCHEMAS_PER_CONNECTION == 0:
            engine.dispose()


def upgrade_all_tenants(engines: dict[str, sa.Engine], schemas: list[tuple[str, str]], workers: int = 4,
                        progress: bool = True) -> MigrationReport:
    """Migrate every (shard, schema) in parallel processes; a failure is reported and the others carry on.

    Processes, not threads: Alembic's `op` and `context` are module-level proxies, one per process.
    Each schema is migrated on its own shard's database.
    """
    from tqdm import tqdm

    report = MigrationReport()
    at_head: set[str] = set()
    for shard, engine in engines.items():
        at_head |= schemas_at(engine, [s for sh, s in schemas if sh == shard], head("tenant"))
    report.current = [s for _, s in schemas if s in at_head]
    schemas = [(shard, s) for shard, s in schemas if s not in at_head]
    bar = tqdm(total=len(schemas), unit="schema", disable=not progress)
    urls = {shard: engine.url.render_as_string(hide_password=False) for shard, engine in engines.items()}
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                             initargs=(urls,)) as pool:
        futures = {pool.submit(_upgrade_in_worker, shard, s): s for shard, s in schemas}
        for future in as_completed(futures):
            schema = futures[future]
            try:
                (report.upgraded if future.result() else report.current).append(schema)
            except Exception as exc:
                report.failed[schema] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            bar.set_postfix_str(schema, refresh=False)
            bar.update()
    bar.close()
    return report
