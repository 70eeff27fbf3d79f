"""Move a tenant's schema to another shard with a short write freeze, all or nothing.

Each step is a function of its own, run in this order:

1. `freeze`: on the source, one transaction locks every table of the schema `EXCLUSIVE`: reads go
   on, writes wait (for at most the lock timeout, then the move gives up). Writes already running
   finish first, so everything that got a 2xx is in what follows.
2. `copy_schema`: on the target, one transaction builds the schema at the source's revision with
   the DDL provisioning runs, and empties the rows that DDL seeds.
3. `copy_rows`: every table, the outbox, events and webhook deliveries included, goes across with
   `COPY` in foreign-key order, then every sequence's position.
4. `verify`: each table has as many rows on the target as on the source, each sequence stands at
   the same place; then the target commits.
5. `fence`: the source schema is renamed `moved_<tenant id>` in the freeze's transaction, which
   commits: the writes that waited fail (the API answers 503, a job retries) instead of landing
   where no one will look again.
6. `switch`: the registry row names the target shard (and the transaction id offset that keeps
   the event feed's order, see `TenantRef.txid_offset`); every process drops its cached keys.
7. `drop_source`: the fenced copy is dropped.

A failure up to `fence`, or at `switch`, gives the source its name back if the fence took it and
drops whatever reached the target: the tenant is whole on the source, the target has nothing. A
failure at `drop_source` leaves the tenant whole on the target and the fenced copy behind
(reported, and dropped by the next move of that tenant). A switch whose commit was acknowledged
by nobody is read back from the registry before anything is undone. A move that dies between
`fence` and `switch` leaves the tenant answering 503 until the move is run again, which renames
the source back first. Moves and drops of one tenant are serialised by an advisory lock in the
primary (`provisioning.change_lock`).
"""

from __future__ import annotations

import contextlib
import graphlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
import psycopg.errors
import sqlalchemy as sa
from flask import current_app
from psycopg import sql

from tenants.context import TenantRef
from tenants.database import db, keepalive_args, shard_engine
from tenants.migrations import tenant_ddl
from tenants.models import Tenant
from tenants.names import IDENTIFIER, PRIMARY_SHARD, checked_schema, checked_shard, moved_schema
from tenants.provisioning import TenantBusy, change_lock, registry_changed
from tenants.shards import shard_names

log = logging.getLogger(__name__)
VERSION_TABLE = "alembic_version"


class MoveFailed(Exception):
    """The move did not happen (or did not finish cleaning up); the message says which step and why."""


@dataclass
class Move:
    """A move under way: the tenant as the registry had it, where it goes, and what the steps learnt."""

    tenant: TenantRef
    target: str
    lock_timeout_ms: int
    source: psycopg.Connection | None = None
    copy: psycopg.Connection | None = None
    revision: str = ""
    tables: list[str] = field(default_factory=list)  # foreign-key order: referenced tables first
    sequences: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    source_txid: int = 0
    target_txid: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    leftover: str | None = None  # a fenced copy left on the source when `drop_source` failed

    @property
    def schema(self) -> str:
        return checked_schema(self.tenant.schema)

    @property
    def fenced(self) -> str:
        return moved_schema(self.tenant.id)

    @property
    def txid_offset(self) -> int:
        """The target's offset: its transaction ids plus this exceed every id the tenant has recorded."""
        return max(self.tenant.txid_offset, self.source_txid + self.tenant.txid_offset - self.target_txid + 1)


# A move's connections wait idle by design (the guard holding the tenant's change lock, the freeze while
# rows copy): a server's idle timeouts would end them mid-move, and with the guard its lock.
_NO_IDLE_TIMEOUTS = "-c idle_session_timeout=0 -c idle_in_transaction_session_timeout=0"


def _connect(shard: str) -> psycopg.Connection:
    """Open a connection of its own to a shard (no pool: the move sets timeouts it must not leave behind)."""
    url = shard_engine(shard).url
    return psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False),
                           connect_timeout=current_app.config["DB_CONNECT_TIMEOUT"],
                           **keepalive_args(_NO_IDLE_TIMEOUTS))


def _database(conn: psycopg.Connection) -> tuple:
    """Return what tells a database apart whatever it is called: its server's system id and its name."""
    return conn.execute("select system_identifier, current_database() from pg_control_system()").fetchone()


def _ident(*names: str) -> sql.Composable:
    for name in names:
        if IDENTIFIER.fullmatch(name) is None:
            raise MoveFailed(f"not a name this move writes into SQL: {name!r}")
    return sql.Identifier(*names)


ATTEMPT_LOCK_TIMEOUT_MS = 200  # below PostgreSQL's deadlock_timeout (1 s): the freeze yields first


def freeze(move: Move) -> None:
    """Lock the source schema's tables against writes and read what the copy needs.

    The tables are locked one after another, so a writer holding one may wait for another the
    freeze already holds. Each attempt gives up after a moment, lets the writers finish and
    tries again, until the move's lock timeout has passed.
    """
    move.source = conn = _connect(move.tenant.shard)
    deadline = time.monotonic() + move.lock_timeout_ms / 1000
    while True:
        conn.execute("select set_config('lock_timeout', %s, true), set_config('statement_timeout', '0', true)",
                     (f"{ATTEMPT_LOCK_TIMEOUT_MS}ms",))
        try:
            names = _lock_tables(move, conn)
            break
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
            conn.rollback()
            if time.monotonic() > deadline:
                raise MoveFailed(f"writes to {move.schema} kept its tables locked for "
                                 f"{move.lock_timeout_ms} ms; try again, or with a longer --lock-timeout") from None
            time.sleep(random.uniform(0.02, 0.1))
    move.revision = conn.execute(sql.SQL("select version_num from {}").format(
        _ident(move.schema, VERSION_TABLE))).fetchone()[0]
    references = conn.execute(
        "select c.relname, r.relname from pg_constraint k join pg_class c on c.oid = k.conrelid "
        "join pg_class r on r.oid = k.confrelid join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and k.contype = 'f' and k.conrelid <> k.confrelid", (move.schema,)).fetchall()
    graph: dict[str, set[str]] = {t: set() for t in names}
    for table, referenced in references:
        graph[table].add(referenced)
    move.tables = [t for t in graphlib.TopologicalSorter(graph).static_order() if t != VERSION_TABLE]
    move.sequences = [s for (s,) in conn.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relkind = 'S' order by 1", (move.schema,))]
    move.source_txid = int(conn.execute("select pg_current_xact_id()::text::bigint").fetchone()[0])


def _tables(conn: psycopg.Connection, schema: str) -> list[str]:
    """Return the names of a schema's tables (partitioned ones too)."""
    return [t for (t,) in conn.execute("select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                                       "where n.nspname = %s and c.relkind in ('r', 'p')", (schema,))]


def _lock_tables(move: Move, conn: psycopg.Connection) -> list[str]:
    conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (move.schema,))  # no migration meanwhile
    names = _tables(conn, move.schema)
    if not names:
        raise MoveFailed(f"{move.schema} has no tables on shard {move.tenant.shard}")
    conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(
        sql.SQL(", ").join(_ident(move.schema, t) for t in names)))
    return names


def copy_schema(move: Move) -> None:
    """Build the schema on the target at the source's revision, with no rows but the version's."""
    move.copy = conn = _connect(move.target)
    conn.execute("select set_config('statement_timeout', '0', true)")
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(_ident(move.schema)))
    conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(_ident(move.schema)))
    conn.execute(tenant_ddl(move.revision))
    conn.execute("SET LOCAL search_path TO DEFAULT")
    built = set(_tables(conn, move.schema))
    if built != {*move.tables, VERSION_TABLE}:
        raise MoveFailed(f"{move.schema} differs from revision {move.revision}'s tables: "
                         f"{sorted(built ^ {*move.tables, VERSION_TABLE})}")
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(_ident(move.schema, t) for t in move.tables)))
    move.target_txid = int(conn.execute("select pg_current_xact_id()::text::bigint").fetchone()[0])


def copy_rows(move: Move) -> None:
    """Copy every table's rows (outbox and events included), referenced tables first, then the sequences."""
    for table in move.tables:
        columns = [c for (c,) in move.source.execute(
            "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 "
            "and not attisdropped and attgenerated = '' order by attnum",
            (f'"{move.schema}"."{table}"',))]
        target = sql.SQL("{} ({})").format(_ident(move.schema, table),
                                          sql.SQL(", ").join(_ident(c) for c in columns))
        with move.source.cursor().copy(sql.SQL("COPY {} TO STDOUT").format(target)) as out, \
                move.copy.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(target)) as into:
            for block in out:
                into.write(block)
    for sequence in move.sequences:
        value, called = move.source.execute(sql.SQL("select last_value, is_called from {}").format(
            _ident(move.schema, sequence))).fetchone()
        move.copy.execute("select setval(%s::regclass, %s, %s)", (f'"{move.schema}"."{sequence}"', value, called))


def _counts(conn: psycopg.Connection, move: Move) -> dict[str, int]:
    counts = {t: conn.execute(sql.SQL("select count(*) from {}").format(_ident(move.schema, t))).fetchone()[0]
              for t in move.tables}
    for sequence in move.sequences:
        counts[f"sequence {sequence}"] = conn.execute(sql.SQL("select last_value from {}").format(
            _ident(move.schema, sequence))).fetchone()[0]
    return counts


def verify(move: Move) -> None:
    """Compare row counts and sequence positions on both sides, then commit the target's copy."""
    source, copied = _counts(move.source, move), _counts(move.copy, move)
    if source != copied:
        differ = {k: (source[k], copied.get(k)) for k in source if source[k] != copied.get(k)}
        raise MoveFailed(f"the copy of {move.schema} differs (source, target): {differ}")
    move.rows = source
    move.copy.commit()


def fence(move: Move) -> None:
    """Rename the source schema and end the freeze: writes that waited fail instead of landing there."""
    move.source.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(_ident(move.schema), _ident(move.fenced)))
    move.source.commit()


def switch(move: Move) -> None:
    """Point the registry at the target shard; every process drops what it cached about the tenant."""
    changed = db.session.execute(
        sa.update(Tenant).where(Tenant.id == move.tenant.id, Tenant.shard == move.tenant.shard)
        .values(shard=move.target, txid_offset=move.txid_offset)).rowcount
    if changed != 1:
        raise MoveFailed(f"the registry row of {move.tenant.slug} changed during the move")
    registry_changed(move.tenant.id)
    db.session.commit()


def drop_source(move: Move) -> None:
    """Drop the fenced copy on the source shard."""
    with _connect(move.tenant.shard) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(_ident(move.fenced)))


def move_tenant(slug: str, target: str, lock_timeout_ms: int = 5000) -> Move:
    """Move tenant `slug` to shard `target`; raise MoveFailed (the tenant whole in one place) if it cannot."""
    target = checked_shard(target)
    if target not in shard_names():
        raise MoveFailed(f"no shard {target!r} (see DATABASE_SHARDS)")
    with _connect(PRIMARY_SHARD) as guard:  # the lock goes with this connection, however the move ends
        guard.autocommit = True
        if not guard.execute("select pg_try_advisory_lock(hashtext(%s))", (change_lock(slug),)).fetchone()[0]:
            raise MoveFailed(str(TenantBusy(slug)))
        try:
            return _locked_move(slug, target, lock_timeout_ms)
        finally:
            _unlock(guard, slug)


def _unlock(guard: psycopg.Connection, slug: str) -> None:
    """Release the change lock before the guard closes: a closed connection's locks go only once its server
    process has read the goodbye, and a drop run right after the move found the tenant busy."""
    with contextlib.suppress(psycopg.Error):  # broken: its server process is ending, and its locks with it
        guard.execute("select pg_advisory_unlock(hashtext(%s))", (change_lock(slug),))


def _locked_move(slug: str, target: str, lock_timeout_ms: int) -> Move:
    """The move itself, under the tenant's change lock."""
    found = db.session.execute(sa.select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none()
    if found is None:
        raise MoveFailed(f"no tenant {slug!r}")
    if found.status == "dropping":
        raise MoveFailed(f"{slug} is being dropped; run the drop again to finish it")
    move = Move(tenant=found.ref(), target=target, lock_timeout_ms=lock_timeout_ms)
    db.session.rollback()
    if move.tenant.shard == target:
        raise MoveFailed(f"{slug} is on shard {target} already")
    _tidy(move)
    _run(move)
    return move


def _timed(move: Move, step: Callable[[Move], None]) -> None:
    start = time.perf_counter()
    try:
        step(move)
    except MoveFailed:
        raise
    except Exception as exc:
        raise MoveFailed(f"{step.__name__} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        move.timings[step.__name__] = time.perf_counter() - start


def _run(move: Move) -> None:
    try:
        for step in (freeze, copy_schema, copy_rows, verify, fence):
            _timed(move, step)
    except BaseException:
        for conn in (move.copy, move.source):
            if conn is not None:
                conn.close()  # rolls back what is not committed: the source unlocked
        _undo(move, _unfence, _drop_copy)
        raise
    move.copy.close()
    move.source.close()
    try:
        _timed(move, switch)
    except BaseException:
        db.session.rollback()
        placed = _registry_shard(move)
        if placed == move.tenant.shard:
            _undo(move, _unfence, _drop_copy)
            raise
        if placed != move.target:
            raise MoveFailed(f"{move.tenant.slug}: the registry could not be read after a failed switch; "
                             "run the move again to finish or undo it") from None
        # the switch committed after all (its acknowledgement was lost): carry on
    try:
        _timed(move, drop_source)
    except MoveFailed as exc:
        move.leftover = move.fenced
        log.warning("%s moved to %s, but its old copy %s on %s is left: %s", move.tenant.slug, move.target,
                    move.fenced, move.tenant.shard, exc)


def _registry_shard(move: Move) -> str | None:
    """Return the shard the registry places the tenant on now, or None if the registry cannot say."""
    try:
        with _connect(PRIMARY_SHARD) as conn:
            return conn.execute("select shard from public.tenants where id = %s", (move.tenant.id,)).fetchone()[0]
    except (psycopg.Error, TypeError):
        return None


def _drop_copy(move: Move) -> None:
    """Drop the target's copy, if any (the registry still places the tenant on its source)."""
    with _connect(move.target) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(_ident(move.schema)))


def _unfence(move: Move) -> None:
    """Give the source schema its name back, if the fence took it."""
    with _connect(move.tenant.shard) as conn:
        present = {n for (n,) in conn.execute("select nspname from pg_namespace where nspname in (%s, %s)",
                                              (move.schema, move.fenced))}
        if present == {move.fenced}:
            conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(_ident(move.fenced), _ident(move.schema)))


def _undo(move: Move, *undo: Callable[[Move], None]) -> None:
    """Put the tenant back whole on its source; what cannot be undone now, `_tidy` does at the next move."""
    for step in undo:
        try:
            step(move)
        except Exception:
            log.exception("could not %s for %s; the next move of it will", step.__name__, move.tenant.slug)


def _tidy(move: Move) -> None:
    """Clear what an earlier failed move left: the source's name back, stray copies dropped.

    Copies are dropped only from databases other than the source's: a shard that is the source's
    database under another name (a second host name, a pooler) holds the live schema itself.
    """
    with _connect(move.tenant.shard) as conn:
        source = _database(conn)
    for shard in shard_names():
        with _connect(shard) as conn:
            if shard != move.tenant.shard and _database(conn) == source:
                raise MoveFailed(f"shards {move.tenant.shard!r} and {shard!r} are one database; "
                                 "each shard needs its own")
            present = {n for (n,) in conn.execute("select nspname from pg_namespace where nspname in (%s, %s)",
                                                  (move.schema, move.fenced))}
            if shard == move.tenant.shard:
                if move.fenced in present and move.schema not in present:
                    conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                        _ident(move.fenced), _ident(move.schema)))
                    log.warning("%s: renamed %s back to %s on %s", move.tenant.slug, move.fenced, move.schema, shard)
                    continue
                doomed = [move.fenced] if move.fenced in present else []
            else:
                doomed = sorted(present)  # the registry places the tenant elsewhere: these are left over
            for name in doomed:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(_ident(name)))
                log.warning("%s: dropped %s left on %s by an earlier move", move.tenant.slug, name, shard)
