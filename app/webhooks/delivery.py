"""Deliver webhooks: the job on the `webhooks` queue, its retries, and the relay's sweep.

One attempt, in three steps, none of which holds a transaction across the network:
1. claim: one `UPDATE` takes a lease on the delivery if it is pending, due and not leased (so a
   job from the fast path and one from the relay never send the same attempt twice), and
   the attempt is logged as `sending` (a worker killed from here on leaves that row, which the
   next attempt marks as interrupted);
2. send, with no transaction open (`app.webhooks.sender`);
3. record the outcome: the log row, the delivery (delivered, failed, or due again after an
   exponential backoff with jitter), and the subscription's failure streak. A retry waits in
   the database, not in the queue: the relay's next sweep after it is due hands it on, through
   the tenant's share like any delivery, in the order they fell due. So a receiver that keeps
   failing holds no queue place between its tries, and its retries cannot enter the queue all at
   once. (The relay is what retries: run it wherever workers run.) A delivery whose
   `WEBHOOK_MAX_ATTEMPTS` attempts (about a day with the defaults) all failed, with no success
   to the subscription since it began, disables the subscription, and the reason is recorded.

Before it claims, a delivery nobody is sending is checked again: one the subscription no longer
wants (its event type, or internal notes, taken off since the fan-out) ends unsent, and one whose
attempts are all spent (only an attempt whose outcome could not be recorded leaves it pending)
ends failed instead of being sent for ever.

Receivers get each event at least once and should ignore an `X-Webhook-Id` they have seen.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import redis
import sqlalchemy as sa
from flask import Flask, current_app

from app import unit_of_work
from app.extensions import db
from app.outbox import on_record, on_record_in_sql
from app.outbox.dispatch import Sweep, add_sweep, hold_purge_while
from app.outbox.models import Event
from app.queues import queue, reserve
from app.webhooks import sender
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from app.webhooks.services import DELIVERIES, deliveries_in_sql, fan_out, signing_secrets, wants
from tenants import active_tenant, current_tenant, set_current_tenant, tenant_moved

log = logging.getLogger(__name__)
QUEUE = "webhooks"
JOB = "app.worker.run_webhook_delivery"
INTERRUPTED = "The worker stopped before this attempt finished; it was tried again."
UNRECORDED = "The worker stopped before this attempt finished; no attempts are left."


DUE = ("state = 'pending' and next_attempt_at <= now() and (leased_until is null or leased_until < now()) "
       "and (enqueued_at is null or enqueued_at < now() - make_interval(secs => :age * 10))")


def init_app(app: Flask) -> None:
    on_record(fan_out)
    on_record_in_sql(deliveries_in_sql)
    unit_of_work.handle(DELIVERIES, _enqueue_committed)
    add_sweep(Sweep("webhook_deliveries", DUE, relay_tenant))
    hold_purge_while(_delivery_pending)


def _delivery_pending() -> sa.ColumnElement[bool]:
    """An old event whose delivery is still pending is kept: the purge would delete it unsent (a worker
    down, or a tenant suspended, for longer than EVENT_RETENTION_DAYS)."""
    return sa.exists().where(WebhookDelivery.event_id == Event.id, WebhookDelivery.state == "pending")


def _enqueue_committed(items: list[tuple[str, uuid.UUID]]) -> None:
    """Hand on the deliveries a transaction marked as handed on (`marked_enqueued`). Any the tenant's
    full share or Redis refused keep the mark, and the relay hands them on once it is stale
    (`OUTBOX_REDELIVER_AFTER`): un-marking them here would take a second pooled connection while
    the committing request still holds its first."""
    if not current_app.config["OUTBOX_FAST_PATH"]:
        return
    by_slug: dict[str, list[uuid.UUID]] = {}
    for slug, delivery_id in items:
        if delivery_id not in by_slug.setdefault(slug, []):
            by_slug[slug].append(delivery_id)
    for slug, ids in by_slug.items():
        enqueue(slug, ids)


def enqueue(slug: str, delivery_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Hand deliveries to the `webhooks` queue while the tenant's share has places; return those handed on.

    One Redis call takes the places; a Redis error leaves the rest to the relay.
    """
    sent: list[uuid.UUID] = []
    try:
        placed = set(reserve(slug, QUEUE, [str(d) for d in delivery_ids]))
        for delivery_id in delivery_ids:
            if str(delivery_id) in placed:
                queue(QUEUE).enqueue(JOB, slug, str(delivery_id), result_ttl=60, failure_ttl=7 * 24 * 3600)
                sent.append(delivery_id)
    except redis.RedisError as exc:
        log.warning("webhook deliveries of %s left for the relay: %s", slug, exc)
    return sent


def backoff(attempt: int) -> float:
    """Return the seconds to wait after failed attempt number `attempt`: doubling, capped, with jitter."""
    config = current_app.config
    base = config["WEBHOOK_RETRY_BASE_SECONDS"] * 2 ** min(attempt - 1, 30)
    return min(base, config["WEBHOOK_RETRY_MAX_SECONDS"]) * random.uniform(0.8, 1.2)


def body_of(event: Event) -> bytes:
    """Return the exact bytes POSTed for an event (the same on every attempt)."""
    return json.dumps({"id": str(event.uid), "type": event.type, "created_at": event.created_at.isoformat(),
                       "data": event.data}, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def deliver(delivery_id: uuid.UUID) -> str:
    """Make one attempt at a delivery if it is due and nobody else is making it; return what happened."""
    config = current_app.config
    found = db.session.execute(
        sa.select(WebhookDelivery, WebhookSubscription, Event)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id == delivery_id)
        .with_for_update(of=WebhookDelivery)  # the checks below and the claim see one state of the delivery
    ).first()
    if found is None:
        db.session.rollback()
        return "no such delivery"
    delivery, subscription, event = found
    if delivery.state != "pending":
        db.session.rollback()
        return f"already {delivery.state}"
    if delivery.leased_until is not None and delivery.leased_until >= datetime.now(UTC):
        db.session.rollback()
        return "not due, or another worker has it"
    if not subscription.enabled and not delivery.manual:
        delivery.state = "failed"
        db.session.commit()
        return "subscription disabled"
    if not wants(subscription, event):
        # The admin took the event type, or internal notes, off the subscription since it was fanned out.
        delivery.state = "failed"
        db.session.commit()
        return "no longer subscribed to this event"
    if not delivery.manual and delivery.attempts >= config["WEBHOOK_MAX_ATTEMPTS"]:
        # Only an attempt whose outcome could not be recorded leaves a delivery here: never send it forever.
        _end_unfinished(delivery_id, UNRECORDED)
        delivery.state = "failed"
        db.session.commit()
        return f"gave up after {delivery.attempts} attempts"
    # Longer than any send can take (the watchdog ends it), so a live sender never loses its lease.
    lease = timedelta(seconds=config["WEBHOOK_TOTAL_TIMEOUT"] + config["WEBHOOK_CONNECT_TIMEOUT"] + 5)
    claimed = db.session.execute(
        sa.update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.state == "pending",
               WebhookDelivery.next_attempt_at <= sa.func.now() + timedelta(seconds=1),
               sa.or_(WebhookDelivery.leased_until.is_(None), WebhookDelivery.leased_until < sa.func.now()))
        .values(leased_until=sa.func.now() + lease, attempts=WebhookDelivery.attempts + 1,
                updated_at=sa.func.now())
        .returning(WebhookDelivery.attempts)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if claimed is None:
        db.session.rollback()
        return "not due, or another worker has it"
    _end_unfinished(delivery_id, INTERRUPTED)
    now = datetime.now(UTC)
    body = body_of(event)
    headers = sender.signed_headers(signing_secrets(subscription, now), body, str(event.uid), event.type)
    attempt = WebhookAttempt(
        id=uuid.uuid4(), delivery_id=delivery_id, subscription_id=subscription.id, event_uid=event.uid,
        event_type=event.type, attempt=claimed, manual=delivery.manual, state="sending", url=subscription.url,
        request_headers=headers, request_body=body.decode("utf-8"), created_at=now)
    db.session.add(attempt)
    url, manual, started_at = subscription.url, delivery.manual, delivery.created_at
    subscription_id, attempt_id, label = subscription.id, attempt.id, f"{event.type} {event.uid}"
    db.session.commit()  # nothing is held open while the receiver takes its time

    outcome = sender.send(url, body, headers)

    return _recorded_where_the_tenant_is(
        lambda: _record(delivery_id, subscription_id, attempt_id, claimed, manual, started_at, outcome, label))


RECORD_TRIES = 5  # over about 3 s: a move's fence lasts until its switch, a moment later


def _recorded_where_the_tenant_is(record: Callable[[], str]) -> str:
    """Run `record`; if the tenant moved to another shard while the receiver answered, run it there.

    Recorded nowhere, the attempt the receiver got would be logged as interrupted and sent again.
    """
    tried = 1
    while True:
        try:
            return record()
        except (sa.exc.ProgrammingError, sa.exc.InternalError):
            db.session.rollback()
            moving = current_tenant()
            if tried == RECORD_TRIES or not tenant_moved(moving):
                raise
        time.sleep(0.2 * 2 ** (tried - 1))
        tried += 1
        placed = active_tenant(moving.slug)
        if placed is None:
            raise LookupError(f"{moving.slug} is gone or suspended since the attempt")
        set_current_tenant(placed.ref())


def _end_unfinished(delivery_id: uuid.UUID, error: str) -> None:
    """Mark the delivery's attempt left `sending` (its worker died, or its outcome was not recorded) as failed."""
    db.session.execute(
        sa.update(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id, WebhookAttempt.state == "sending")
        .values(state="failed", error=error, finished_at=sa.func.now())
    )


def _record(delivery_id: uuid.UUID, subscription_id: uuid.UUID, attempt_id: uuid.UUID, number: int, manual: bool,
            started_at: datetime, outcome: sender.Outcome, event_label: str) -> str:
    config = current_app.config
    now = datetime.now(UTC)
    subscription = db.session.execute(
        sa.select(WebhookSubscription).where(WebhookSubscription.id == subscription_id).with_for_update()
    ).scalar_one_or_none()
    delivery = db.session.get(WebhookDelivery, delivery_id, with_for_update=True)
    attempt = db.session.get(WebhookAttempt, attempt_id)
    if subscription is None or delivery is None or attempt is None:
        db.session.rollback()
        return "subscription deleted while sending"
    attempt.state = "succeeded" if outcome.ok else "failed"
    attempt.response_status = outcome.status
    attempt.response_headers = outcome.headers
    attempt.response_body = outcome.body
    attempt.error = outcome.error
    attempt.latency_ms = outcome.latency_ms
    attempt.finished_at = now
    delivery.leased_until = None
    retry_in = None
    if outcome.ok:
        delivery.state = "delivered"
        subscription.consecutive_failures = 0
        subscription.failing_since = None
        subscription.last_success_at = now
    else:
        subscription.consecutive_failures += 1
        subscription.failing_since = subscription.failing_since or now
        if not manual and number < config["WEBHOOK_MAX_ATTEMPTS"]:
            retry_in = backoff(number)
            delivery.next_attempt_at = now + timedelta(seconds=retry_in)
            delivery.enqueued_at = None  # the relay's sweep hands it on once due
            attempt.next_retry_at = delivery.next_attempt_at
        else:
            delivery.state = "failed"
            never_since = subscription.last_success_at is None or subscription.last_success_at < started_at
            if not manual and subscription.enabled and never_since:
                _disable(subscription, delivery_id, now, started_at, number, event_label, outcome.error)
    db.session.commit()
    return attempt.state if retry_in is None else f"failed, retry in {retry_in:.0f} s"


def _disable(subscription: WebhookSubscription, delivery_id: uuid.UUID, now: datetime, started_at: datetime,
             attempts: int, event_label: str, error: str | None) -> None:
    """Turn a subscription off after a delivery gave up, saying why; its other pending deliveries stop."""
    hours = max((now - started_at).total_seconds() / 3600, 0)
    subscription.enabled = False
    subscription.disabled_at = now
    subscription.disabled_reason = (
        f"Disabled after {attempts} failed attempts over {hours:.1f} h to deliver {event_label}, with no "
        f"successful delivery since; the last: {error}")[:2000]
    db.session.execute(
        sa.update(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == subscription.id, WebhookDelivery.state == "pending",
               WebhookDelivery.id != delivery_id)
        .values(state="failed", updated_at=sa.func.now())
    )
    log.warning("webhook %s disabled: %s", subscription.id, subscription.disabled_reason)


def relay_tenant(slug: str, redeliver_after: float, batch: int = 500) -> int:
    """Enqueue the tenant's deliveries that are due and have no live job (lost, or its worker died)."""
    stale = sa.func.now() - timedelta(seconds=redeliver_after)
    ids = db.session.execute(
        sa.select(WebhookDelivery.id)
        .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= sa.func.now(),
               sa.or_(WebhookDelivery.leased_until.is_(None), WebhookDelivery.leased_until < sa.func.now()),
               sa.or_(WebhookDelivery.enqueued_at.is_(None), WebhookDelivery.enqueued_at < stale))
        .order_by(WebhookDelivery.next_attempt_at).limit(batch).with_for_update(skip_locked=True)
    ).scalars().all()
    sent = enqueue(slug, list(ids)) if ids else []
    if sent:
        db.session.execute(sa.update(WebhookDelivery).where(WebhookDelivery.id.in_(sent))
                           .values(enqueued_at=sa.func.now()))
    db.session.commit()
    return len(sent)
