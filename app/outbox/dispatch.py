"""Hand outbox rows to RQ: right after the commit that wrote them, and again from the relay.

The fast path is best effort: if Redis is down the request still succeeds (its rows are durable)
and the relay enqueues them once Redis is back. The relay also re-enqueues rows whose job has not
finished after `OUTBOX_REDELIVER_AFTER` seconds (a killed worker); jobs are idempotent.

Batch handlers (those offering `run_batch`, see `app.worker`) get at most one job per tenant and
handler at a time: the fast path sets a short-lived wake mark (`SET NX`) and enqueues only if it
was not set already; the job claims every pending row and clears the mark once it runs dry.
The relay ignores the marks, so a lost mark or job only delays rows until its next sweep; for a
batch handler it enqueues one job per sweep (which claims all its pending rows) plus one job for
each row that failed before (batches skip those, so each retries on its own).
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import redis
import sqlalchemy as sa
from flask import Flask, current_app

from app import idempotency, unit_of_work
from app.extensions import db, redis_client
from app.outbox import BY_NAME, OUTBOX_ROWS, WAKE_CHANNEL
from app.outbox.models import Event, OutboxRow
from app.queues import RETRY, queue, reserve
from tenants import active_tenants, keepalive_args, shard_engines, tenant_context, tenants_having

log = logging.getLogger(__name__)
JOB = "app.worker.run_outbox_row"


def init_app(app: Flask) -> None:
    unit_of_work.handle(OUTBOX_ROWS, _enqueue_committed)


def _enqueue_committed(rows: list[tuple[str, int, str]]) -> None:
    """The fast path: hand the rows a transaction wrote to RQ as soon as it commits."""
    if not current_app.config["OUTBOX_FAST_PATH"]:
        return
    by_tenant: dict[str, list[tuple[int, str]]] = {}
    for slug, row_id, handler in rows:
        by_tenant.setdefault(slug, []).append((row_id, handler))
    for slug, jobs in by_tenant.items():
        enqueue_rows(slug, jobs)


def wake_key(slug: str, handler: str) -> str:
    return f"tms:outbox:wake:{slug}:{handler}"


def _is_batch(handler: str) -> bool:
    return BY_NAME[handler].run_batch is not None


def enqueue_rows(slug: str, rows: list[tuple[int, str]], coalesce: bool = True) -> set[int] | None:
    """Enqueue a job per outbox row (one per batch handler while one waits), within the tenant's fair share.

    Returns the rows handed to RQ (the rest wait for the relay), or None if Redis failed.
    """
    try:
        jobs = [(row_id, handler) for row_id, handler in rows if not (coalesce and _is_batch(handler))]
        if coalesce:
            first: dict[str, int] = {}
            for row_id, handler in rows:
                if _is_batch(handler):
                    first.setdefault(handler, row_id)
            if first:
                pipe = redis_client().pipeline(transaction=False)
                ttl = int(current_app.config["OUTBOX_REDELIVER_AFTER"])
                for handler in first:
                    pipe.set(wake_key(slug, handler), 1, nx=True, ex=max(ttl, 1))
                jobs += [(row_id, h) for (h, row_id), woke in zip(first.items(), pipe.execute(), strict=True)
                         if woke]
        by_queue: dict[str, list[int]] = {}
        for row_id, handler in jobs:
            by_queue.setdefault(BY_NAME[handler].queue, []).append(row_id)
        sent: set[int] = set()
        for name, ids in by_queue.items():
            placed = [int(m) for m in reserve(slug, name, [str(i) for i in ids])]
            if placed:
                q = queue(name)
                q.enqueue_many([q.prepare_data(JOB, args=(slug, row_id), retry=RETRY, result_ttl=60,
                                               failure_ttl=7 * 24 * 3600) for row_id in placed])
            sent.update(placed)
        return sent
    except redis.RedisError as exc:
        log.warning("outbox rows of %s left for the relay: %s", slug, exc)
        return None


def clear_wake(slug: str, handler: str) -> None:
    """Forget the wake mark of a batch handler (its job ran dry); best effort."""
    try:
        redis_client().delete(wake_key(slug, handler))
    except redis.RedisError as exc:
        log.warning("wake mark of %s/%s left to expire: %s", slug, handler, exc)


def wake(slug: str, handler: str, row_id: int) -> None:
    """Make sure a job will run the batch handler's pending rows (unless one is waiting already)."""
    enqueue_rows(slug, [(row_id, handler)])


def relay_tenant(slug: str, batch: int = 500, fresh: bool = False) -> int:
    """Enqueue the tenant's rows that are overdue (or, `fresh`, never handed on); return how many went to RQ."""
    redeliver = timedelta(seconds=current_app.config["OUTBOX_REDELIVER_AFTER"])
    now = datetime.now(UTC)
    due = [OutboxRow.enqueued_at.is_(None)] if fresh else [
        sa.or_(OutboxRow.enqueued_at.is_(None), OutboxRow.enqueued_at < now - redeliver),
        OutboxRow.created_at < now - redeliver / 10]
    rows = db.session.execute(
        sa.select(OutboxRow.id, OutboxRow.handler, OutboxRow.last_error)
        .where(OutboxRow.processed_at.is_(None), OutboxRow.given_up_at.is_(None), *due)
        .order_by(OutboxRow.id).limit(batch).with_for_update(skip_locked=True)
    ).all()
    unknown = {r.handler for r in rows if r.handler not in BY_NAME}
    if unknown:
        # A handler this process does not have (removed, or from a newer release): leave its rows.
        log.warning("outbox rows of %s wait for unknown handlers %s", slug, sorted(unknown))
        rows = [r for r in rows if r.handler in BY_NAME]
    jobs, led = [], set()
    for r in rows:
        if _is_batch(r.handler) and r.last_error is None:
            if r.handler in led:
                continue
            led.add(r.handler)
        jobs.append((r.id, r.handler))
    sent = enqueue_rows(slug, jobs, coalesce=fresh) if rows else None
    if not sent:
        db.session.rollback()
        return 0
    # A batch job claims its handler's other rows too, so they count as handed on with it.
    batches = {h for row_id, h in jobs if row_id in sent and _is_batch(h)}
    handed = [r.id for r in rows if r.id in sent or (r.handler in batches and r.last_error is None)]
    db.session.execute(sa.update(OutboxRow).where(OutboxRow.id.in_(handed)).values(enqueued_at=now))
    db.session.commit()
    return len(handed)


def given_up_rows() -> list[tuple[str, sa.Row]]:
    """Return (tenant slug, row) of every active tenant's outbox rows given up after OUTBOX_MAX_ATTEMPTS runs:
    each row's id, handler, attempts, given_up_at and last_error."""
    tenants = active_tenants()
    db.session.rollback()
    found = []
    for ref in tenants_having(tenants, "outbox", "given_up_at is not null"):
        with tenant_context(ref):
            try:
                found += [(ref.slug, row) for row in db.session.execute(
                    sa.select(OutboxRow.id, OutboxRow.handler, OutboxRow.attempts, OutboxRow.given_up_at,
                              OutboxRow.last_error).where(OutboxRow.given_up_at.is_not(None)).order_by(OutboxRow.id))]
            except sa.exc.SQLAlchemyError as exc:  # a damaged schema: said, and the others listed
                log.warning("the outbox of %s could not be read: %s", ref.slug, exc)
            db.session.rollback()
    return found


def retry_given_up(slug: str, row_id: int | None = None) -> int | None:
    """Give the tenant's given-up rows (or one) a fresh count of runs, for the relay to hand on; return how
    many, or None if there is no such active tenant."""
    tenants = active_tenants({slug})
    db.session.rollback()
    if not tenants:
        return None
    with tenant_context(tenants[0]):
        stmt = sa.update(OutboxRow).where(OutboxRow.given_up_at.is_not(None))
        if row_id is not None:
            stmt = stmt.where(OutboxRow.id == row_id)
        count = db.session.execute(stmt.values(given_up_at=None, attempts=0, enqueued_at=None)).rowcount
        db.session.commit()
    return count


@dataclass(frozen=True)
class Sweep:
    """More work the relay hands on: tenants whose `table` has a row where `condition` holds get `run(slug, age)`."""

    table: str
    condition: str
    run: Callable[[str, float], int]


SWEEPS: list[Sweep] = []


def add_sweep(sweep: Sweep) -> None:
    """Make the relay also sweep `sweep.table` (webhook deliveries use this)."""
    if all(s.table != sweep.table for s in SWEEPS):
        SWEEPS.append(sweep)


def relay_once(fresh: bool = False, slugs: set[str] | None = None) -> int:
    """Sweep the active tenants that have overdue rows; return how many rows were enqueued.

    Which tenants have any is asked of all schemas in a few queries, instead of three round trips
    per tenant every interval. `fresh` hands on the rows no one has enqueued yet instead (what
    a wake announced), of the tenants named in `slugs` if given.
    """
    tenants = active_tenants(slugs)  # a wake names its tenants; the whole registry, read per wake, grew with it
    db.session.rollback()
    age = current_app.config["OUTBOX_REDELIVER_AFTER"]
    outbox = (Sweep("outbox", "processed_at is null and enqueued_at is null",
                    lambda slug, _age: relay_tenant(slug, fresh=True)) if fresh else
              Sweep("outbox", "processed_at is null and given_up_at is null "
                              "and created_at < now() - make_interval(secs => :age)",
                    lambda slug, _age: relay_tenant(slug)))
    sweeps = [outbox, *SWEEPS]
    total = 0
    for sweep in sweeps:
        for ref in tenants_having(tenants, sweep.table, sweep.condition, {"age": age / 10}):
            with tenant_context(ref):
                try:
                    total += sweep.run(ref.slug, age)
                except sa.exc.SQLAlchemyError as exc:
                    db.session.rollback()
                    log.warning("relay skipped %s of %s: %s", sweep.table, ref.slug, exc)
    return total


# Conditions (on `Event`) under which an old event is kept: work of another area still pending on it.
PURGE_HOLDS: list[Callable[[], sa.ColumnElement[bool]]] = []


def hold_purge_while(pending: Callable[[], sa.ColumnElement[bool]]) -> None:
    """Keep old events for which `pending()` holds (webhook deliveries not yet sent use this)."""
    if pending not in PURGE_HOLDS:
        PURGE_HOLDS.append(pending)


def purge_events(slug: str, batch: int = 5000) -> int:
    """Delete the tenant's events older than EVENT_RETENTION_DAYS whose work is done; return how many.

    Their outbox rows, webhook deliveries and delivery log go with them. An event with an outbox
    row or other work (`hold_purge_while`) still pending is kept, whatever its age.
    """
    cutoff = datetime.now(UTC) - timedelta(days=current_app.config["EVENT_RETENTION_DAYS"])
    pending = sa.select(OutboxRow.id).where(OutboxRow.event_id == Event.id, OutboxRow.processed_at.is_(None))
    holds = [~pending.exists(), *(~hold() for hold in PURGE_HOLDS)]
    total = 0
    while True:
        doomed = sa.select(Event.id).where(Event.created_at < cutoff, *holds).limit(batch)
        deleted = db.session.execute(sa.delete(Event).where(Event.id.in_(doomed.scalar_subquery()))).rowcount
        db.session.commit()
        total += deleted
        if deleted < batch:
            return total


def purge_once() -> int:
    """Purge old events, and expired Idempotency-Keys, in every active tenant that has any, and signups'
    expired keys; return how many rows were deleted."""
    tenants = active_tenants()
    db.session.rollback()
    from app.signup.models import purge_expired

    try:
        purged_signups = purge_expired(idempotency.RETENTION)
    except sa.exc.SQLAlchemyError as exc:  # contained, as each tenant's purge is: the relay goes on
        db.session.rollback()
        log.warning("purge of signups' keys skipped: %s", exc)
        purged_signups = 0
    expired = "created_at < now() - make_interval(secs => :secs)"
    purges = [
        ("events", "created_at < now() - make_interval(days => :days)",
         {"days": current_app.config["EVENT_RETENTION_DAYS"]}, purge_events),
        ("idempotency_keys", expired, {"secs": idempotency.RETENTION.total_seconds()},
         lambda _slug: idempotency.purge_expired()),
    ]
    total = 0
    for table, condition, params, purge in purges:
        for ref in tenants_having(tenants, table, condition, params):
            with tenant_context(ref):
                try:
                    total += purge(ref.slug)
                except sa.exc.SQLAlchemyError as exc:
                    db.session.rollback()
                    log.warning("purge of %s skipped %s: %s", table, ref.slug, exc)
    return total + purged_signups


@dataclass(frozen=True)
class Chore:
    """Work the relay does in every active tenant now and then, `every()` seconds apart (0: never)."""

    name: str
    every: Callable[[], float]
    run: Callable[[], int]  # in the tenant's context; returns how many things it did


CHORES: list[Chore] = []


def add_chore(chore: Chore) -> None:
    """Make the relay run `chore` in every active tenant every `chore.every()` seconds (media uses this)."""
    if all(c.name != chore.name for c in CHORES):
        CHORES.append(chore)


def run_chore(chore: Chore) -> int:
    """Run a chore in every active tenant; one tenant's failure is logged and the others go on."""
    tenants = active_tenants()
    db.session.rollback()
    total = 0
    for ref in tenants:
        with tenant_context(ref):
            try:
                total += chore.run()
            except Exception:  # a chore must never stop the relay's sweep
                log.warning("%s skipped %s", chore.name, ref.slug, exc_info=True)
            finally:
                db.session.rollback()
    return total


def relay_forever(interval: float = 2.0, purge_every: float = 3600.0, stop: threading.Event | None = None) -> None:
    """Run the relay until stopped (or `stop` is set): hand on what wakes announce at once, sweep `interval` s apart.

    Writes that record events in SQL notify `WAKE_CHANNEL` with their tenant's slug once they have
    committed (`app.outbox.wakes`), so the relay, not the request, hands their rows to RQ. The sweep, the safety net
    for a wake lost with a dropped connection, and the purge of expired events (every
    `purge_every`) run on a thread of their own: probing every schema takes seconds once there
    are thousands of tenants, and wakes waited behind it (1,050 tenants: p95 1.3 s from 201 to
    assigned). If that thread dies, the relay stops too, for its supervisor to restart it whole.
    Once `stop` is set this returns within about `interval`; a sweep still under way ends on its
    own (daemon) thread. A wake can skip rows a sweep has locked (`SKIP LOCKED`); if that sweep
    then cannot place them, they wait for the next sweep: a delay, never a loss.
    """
    stop = stop or threading.Event()
    sweeper = threading.Thread(target=_sweep_forever, args=(current_app._get_current_object(), interval,
                                                             purge_every, stop), name="relay-sweep", daemon=True)
    sweeper.start()
    listeners = ShardListeners(retry_after=interval)
    try:
        while not stop.is_set():
            if not sweeper.is_alive():
                raise RuntimeError("the relay's sweep stopped; see the error above")
            try:
                listeners.refresh()
                woken = listeners.woken(interval)
                if woken:
                    relay_once(fresh=True, slugs=woken)
            except (sa.exc.OperationalError, psycopg.OperationalError) as exc:
                db.session.rollback()
                log.warning("relay waiting for the database: %s", exc)
                stop.wait(interval)
    finally:
        stop.set()
        listeners.close()
        sweeper.join(timeout=interval)


def _sweep_forever(app: Flask, interval: float, purge_every: float, stop: threading.Event) -> None:
    """Sweep at once and then `interval` seconds after each sweep ends, purging every `purge_every`, until `stop`.

    The pause follows the end of a sweep, not its start, so a sweep that takes longer than
    `interval` (thousands of schemas) still leaves the database and the wakes time between sweeps.
    """
    next_purge = time.monotonic()
    with app.app_context():
        # A chore first runs a twenty-fourth of its interval after the relay starts, then every interval.
        next_chore = {c.name: time.monotonic() + c.every() / 24 for c in CHORES}
        while not stop.is_set():
            try:
                enqueued = relay_once()
                if enqueued:
                    log.info("relay enqueued %d outbox rows and deliveries", enqueued)
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + purge_every
                    purged = purge_once()
                    if purged:
                        log.info("purged %d expired events", purged)
                for chore in CHORES:
                    if chore.every() > 0 and time.monotonic() >= next_chore[chore.name]:
                        next_chore[chore.name] = time.monotonic() + chore.every()
                        log.info("%s: %d", chore.name, run_chore(chore))
            except (sa.exc.OperationalError, psycopg.OperationalError) as exc:
                db.session.rollback()
                log.warning("relay sweep waiting for the database: %s", exc)
            stop.wait(interval)


class ShardListeners:
    """The relay's LISTEN connection on each shard (a wake is sent to the database its write ran in, its
    tenant's shard), each connected and reconnected on its own.

    A shard that is down delays the wakes of its own tenants only: the others' go on at once, and
    its rows wait for the sweep once it answers again. Each try to reach it may block for the
    connect timeout (a host that drops packets), so the tries back off, doubling up to a minute.
    """

    LONGEST_WAIT = 60.0

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        self._conns: dict[str, psycopg.Connection] = {}
        self._next_try: dict[str, float] = {}
        self._waits: dict[str, float] = {}

    def refresh(self) -> None:
        """Connect to each shard that has no live listener, at most once per `retry_after` per shard."""
        for name, engine in shard_engines().items():
            conn = self._conns.get(name)
            if conn is not None and not conn.closed:
                continue
            if time.monotonic() < self._next_try.get(name, 0.0):
                continue
            try:
                self._conns[name] = _listen_on(engine)
                self._waits.pop(name, None)
            except psycopg.Error as exc:
                self._conns.pop(name, None)
                wait = min(self._waits.get(name, self.retry_after / 2) * 2, self.LONGEST_WAIT)
                self._waits[name] = wait
                self._next_try[name] = time.monotonic() + wait
                log.warning("relay cannot listen on shard %s (tried again in %.0f s), its tenants wait for the "
                            "sweep: %s", name, wait, exc)

    def woken(self, wait: float) -> set[str]:
        """Wait up to `wait` seconds for wakes on any shard; return the slugs of every wake that arrived."""
        live = [conn for conn in self._conns.values() if not conn.closed]
        if not live:
            time.sleep(wait)
            return set()
        ready, _, _ = select.select(live, [], [], wait)
        slugs: set[str] = set()
        for conn in ready:
            try:
                slugs.update(note.payload for note in conn.notifies(timeout=0.01))
            except psycopg.Error as exc:  # that shard went away: it is listened to again once it answers
                log.warning("relay lost a shard's wakes: %s", exc)
                conn.close()
        return slugs

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()


def _listen_on(engine: sa.Engine) -> psycopg.Connection:
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg.connect(url, autocommit=True, **keepalive_args(),
                           connect_timeout=current_app.config["DB_CONNECT_TIMEOUT"])
    try:
        conn.execute(f"LISTEN {WAKE_CHANNEL}")
    except psycopg.Error:
        conn.close()
        raise
    return conn
