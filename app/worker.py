"""What RQ workers run: every job enters the app context and its tenant's context first.

Jobs take a tenant slug and ids, never objects. A job locks its outbox row (`SKIP LOCKED`), runs
the handler and marks the row processed in the same transaction, so each row takes effect once.

A handler may offer `run_batch(payloads)` (a batch handler). Its job then claims pending rows
of that handler, `BATCH_SIZE` at a time (`SKIP LOCKED`, oldest first), runs each batch in one
transaction, and repeats until none are left (for at most `BATCH_SECONDS`, then it hands on to a
fresh job). The fast path enqueues a job for a batch handler only when no job is waiting or
running for it (the wake mark, see `dispatch.enqueue_rows`). When a claim comes back empty the
job clears the mark and claims once more, waiting for rows the relay may hold meanwhile: a row
committed before the mark was cleared is claimed by this job, and a later one sets the mark
again and wakes a new job. So under a steady stream
one job per tenant and handler keeps claiming what arrives, instead of many jobs queueing on the
same locks, and a burst turns thousands of jobs and transactions into a few. If a batch fails, its rows run one by
one instead, so one bad row cannot hold back the others; a row that failed is left to the relay
and its own retried job, and is never claimed by a batch again.

A handler that raises Unavailable (an outage it cannot act through) asks to be run again later:
the job returns RQ's `Retry` with a growing wait (`queues.retry_later`), and the row's
`enqueued_at` moves to when that retry is due, so the relay does not hand the row on meanwhile
(each of its redeliveries would start one more chain of retries); if the retry is lost, the relay
still hands the row on, `OUTBOX_REDELIVER_AFTER` after it was due. A job that fails, by an outage or
an exception, and that RQ will retry keeps its place in the tenant's share until the retry runs
(`queues.Place`), so the tenant's other rows wait in the database meanwhile, not in RQ's schedule
outside the share. (A killed process gives back nothing: its place ends with its lease.)
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import psycopg.errors
import sqlalchemy as sa
from flask import Flask, current_app
from rq import Retry, get_current_job

from app.errors import Unavailable
from app.extensions import db
from app.outbox import BY_NAME, Handler
from app.outbox.models import Event, OutboxRow
from app.queues import Place, release, retry_later
from tenants import TenantRef, active_tenant, is_slug, tenant_context

log = logging.getLogger(__name__)
ROW_LOCK_WAIT = "2s"  # how long a job waits for its outbox row's lock (`_locked_row`)
_app: Flask | None = None
BATCH_SIZE = 100
BATCH_SECONDS = 5.0


def worker_app() -> Flask:
    """Return this worker process's app, built once (an app passed in by tests wins)."""
    global _app
    if _app is None:
        from app import create_app

        _app = create_app()
    return _app


def use_app(app: Flask) -> None:
    """Make jobs in this process use `app` (for in-process workers in tests and benchmarks)."""
    global _app
    _app = app


def job_tenant(slug: object) -> TenantRef | None:
    """Return the active tenant a job names; None if it is gone or suspended (the job has nothing to do).

    A job that names no tenant, or a malformed one, fails (into RQ's failed registry) instead of
    running anywhere: every job carries its tenant explicitly (invariant 1).
    """
    if not is_slug(slug):
        raise ValueError(f"a job needs a tenant; got {slug!r}")
    tenant = active_tenant(slug)
    db.session.rollback()
    return None if tenant is None else tenant.ref()


def run_outbox_row(slug: str, row_id: int) -> str | Retry:
    """Run one outbox row's handler for tenant `slug` (and, for a batch handler, every pending row)."""
    with worker_app().app_context():
        tenant = job_tenant(slug)
        if tenant is None:
            job = get_current_job()
            if job is not None:  # its place, which a reactivated tenant would otherwise wait out the lease of
                release(slug, job.origin, str(row_id))
            return "tenant gone or suspended"
        with tenant_context(tenant):
            name = db.session.execute(
                sa.select(OutboxRow.handler).where(OutboxRow.id == row_id)).scalar_one_or_none()
            db.session.rollback()
            if name is None or name not in BY_NAME:
                return "no such row or handler"
            handler = BY_NAME[name]
            place = Place(slug, handler.queue, str(row_id))
            try:
                if handler.run_batch is not None:
                    return _run_batches(slug, row_id, handler)
                return _run_one(row_id, handler, place)
            except Exception:
                wait = _next_retry_wait(row_id)  # whatever failed, the failure recorded or not
                if wait is not None:
                    place.keep_for(wait)
                raise
            finally:
                place.give_back()


def _run_one(row_id: int, handler: Handler, place: Place | None = None) -> str | Retry:
    """Run one row; with the job's `place`, it is the job's own row, whose failure RQ retries (raised)."""
    found = _locked_row(row_id)
    if found is None:
        db.session.rollback()
        return "already processed or in progress"
    row, payload = found
    attempts = row.attempts + 1
    try:
        handler.func(payload)
        row.processed_at = datetime.now(UTC)
        row.attempts = attempts
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        error = f"{type(exc).__name__}: {exc}"[:2000]
        failed: dict[str, object] = {"attempts": OutboxRow.attempts + 1, "last_error": error}
        later, wait = None, _next_retry_wait(row_id)
        if isinstance(exc, Unavailable):
            later, wait = retry_later(handler.queue, exc.retry_after)
            failed["attempts"] = OutboxRow.attempts  # an outage says nothing of the row
        elif attempts >= current_app.config["OUTBOX_MAX_ATTEMPTS"]:
            failed["given_up_at"] = datetime.now(UTC)
        if wait is not None:  # the relay hands it on again only once RQ's own retry is overdue
            failed["enqueued_at"] = datetime.now(UTC) + timedelta(seconds=wait)
        db.session.execute(sa.update(OutboxRow).where(OutboxRow.id == row_id).values(**failed))
        db.session.commit()
        if "given_up_at" in failed:
            log.error("outbox row %s (%s) given up after %d failed runs; `flask outbox retry` runs it again: %s",
                      row_id, handler.name, attempts, error)
            return "given up"
        if place is not None and later is not None:
            log.info("outbox row %s waits %s s for a retry: %s", row_id, wait, exc)
            job = get_current_job()
            if job is None or (job.number_of_retries or 0) < later.max:  # else RQ fails it: no retry comes
                place.keep_for(wait)
            return later
        if place is not None:
            raise
        log.warning("outbox row %s failed; left to its own job and the relay", row_id, exc_info=True)
        return "failed"
    return "done"


def _next_retry_wait(row_id: int) -> int | None:
    """Return the seconds until RQ runs the row again after its job fails now, None if it will not (no
    retries left, or the row is not the job's own: a batch's other rows are left to the relay)."""
    job = get_current_job()
    if job is None or not job.retries_left or not job.retry_intervals or list(job.args[-1:]) != [row_id]:
        return None
    return job.get_retry_interval()


def _claim(handler: Handler, own_id: int, failed: set[int], wait: bool = False) -> list[sa.Row]:
    """Lock up to BATCH_SIZE pending rows of the handler; return (id, payload) of each.

    Rows another transaction holds are skipped, or with `wait` waited for: the claim after the
    wake mark is cleared waits, since the relay may hold a new row while it finds the mark still
    set (and so leaves that row to this very job).
    """
    stmt = (sa.select(OutboxRow.id, Event.payload).join(Event, Event.id == OutboxRow.event_id)
            .where(OutboxRow.handler == handler.name, OutboxRow.processed_at.is_(None),
                   OutboxRow.given_up_at.is_(None), sa.or_(OutboxRow.last_error.is_(None), OutboxRow.id == own_id))
            .order_by(OutboxRow.id).limit(BATCH_SIZE).with_for_update(of=OutboxRow, skip_locked=not wait))
    if failed:
        stmt = stmt.where(OutboxRow.id.not_in(failed))
    return list(db.session.execute(stmt))


def _locked_row(row_id: int) -> sa.Row | None:
    """Lock an unprocessed row and read its event's payload; None if it is processed, or held by a job.

    The relay holds the rows it hands on until it commits, a moment after their jobs are queued: a
    job that skipped a locked row left it undone until the relay's next redelivery (30 s), so the
    lock is waited for, briefly (`ROW_LOCK_WAIT`); a job of the same row running meanwhile keeps it.
    """
    db.session.execute(sa.text(f"SET LOCAL lock_timeout = '{ROW_LOCK_WAIT}'"))
    try:
        found = db.session.execute(
            sa.select(OutboxRow, Event.payload).join(Event, Event.id == OutboxRow.event_id)
            .where(OutboxRow.id == row_id, OutboxRow.processed_at.is_(None)).with_for_update(of=OutboxRow)
        ).first()
    except sa.exc.OperationalError as exc:
        if not isinstance(exc.orig, psycopg.errors.LockNotAvailable):
            raise
        return None
    db.session.execute(sa.text("SET LOCAL lock_timeout TO DEFAULT"))  # the handler's own waits are its own
    return found


def _run_batches(slug: str, own_id: int, handler: Handler) -> str:
    from app.outbox.dispatch import clear_wake, wake

    run_batch = handler.run_batch
    deadline = time.monotonic() + BATCH_SECONDS
    done = 0
    failed: set[int] = set()
    cleared = False
    while True:
        rows = _claim(handler, own_id, failed, wait=cleared)
        if not rows:
            db.session.rollback()
            if cleared:
                break
            clear_wake(slug, handler.name)
            cleared = True
            continue
        ids = [r.id for r in rows]
        try:
            run_batch([r.payload for r in rows])
            db.session.execute(
                sa.update(OutboxRow).where(OutboxRow.id.in_(ids))
                .values(processed_at=datetime.now(UTC), attempts=OutboxRow.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.warning("a batch of %d outbox rows of %s failed; running them one by one", len(ids), slug,
                        exc_info=True)
            failed.update(row_id for row_id in ids if _run_one(row_id, handler) == "failed")
        done += len(ids)
        if time.monotonic() > deadline:
            clear_wake(slug, handler.name)
            wake(slug, handler.name, own_id)
            break
    if own_id in failed:
        # RQ retries this job with backoff; the other rows are done or left to their relay
        raise RuntimeError(f"outbox row {own_id} of {slug} failed; see its last_error")
    return f"done, {done} rows"


def run_webhook_delivery(slug: str, delivery_id: str) -> str:
    """Make one attempt at a webhook delivery of tenant `slug` (see `app.webhooks.delivery`)."""
    import uuid

    from app.webhooks.delivery import deliver

    with worker_app().app_context():
        tenant = job_tenant(slug)
        if tenant is None:
            release(slug, "webhooks", delivery_id)
            return "tenant gone or suspended"
        try:
            with tenant_context(tenant):
                return deliver(uuid.UUID(delivery_id))
        finally:
            release(slug, "webhooks", delivery_id)
