"""Webhook subscriptions: create, change, rotate secrets, read the delivery log, redeliver.

Deliveries hang off recorded events (`fan_out`, run by the outbox in the transaction that
records them), so a delivery exists exactly when its event committed, and is handed to the
`webhooks` queue after that commit; `app.webhooks.delivery` sends it.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects.postgresql import insert

from app import audit, unit_of_work
from app.errors import Conflict, NotFound
from app.extensions import db
from app.outbox import RecordedEvent
from app.outbox.models import Event
from app.pagination import SortKey, page
from app.webhooks import targets
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from tenants import current_tenant, one_at_a_time

DELIVERIES = "webhook_deliveries"
MAX_SUBSCRIPTIONS = 50
DEFAULT_GRACE = 24 * 3600
MAX_PREVIOUS_SECRETS = 10  # each signs every delivery: X-Signature grows by one signature apiece
LIST_KEYS = [SortKey(WebhookSubscription.created_at, kind="datetime"), SortKey(WebhookSubscription.id, kind="uuid")]
LOG_KEYS = [SortKey(WebhookAttempt.created_at, descending=True, kind="datetime"),
            SortKey(WebhookAttempt.id, descending=True, kind="uuid")]


def new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def create_subscription(url: str, events: list[str], secret: str | None = None, include_internal: bool = False,
                        description: str | None = None) -> tuple[WebhookSubscription, str]:
    """Subscribe `url` to event types; return the subscription and its secret (shown only now)."""
    targets.check_saved(url)
    one_at_a_time("webhook_subscriptions")
    count = db.session.execute(sa.select(sa.func.count()).select_from(WebhookSubscription)).scalar_one()
    if count >= MAX_SUBSCRIPTIONS:
        raise Conflict(f"An organization may have at most {MAX_SUBSCRIPTIONS} webhooks.")
    secret = secret or new_secret()
    subscription = WebhookSubscription(id=uuid.uuid4(), url=url, events=sorted(set(events)),
                                       include_internal=include_internal, description=description,
                                       enabled=True, secret=secret, consecutive_failures=0)
    db.session.add(subscription)
    audit.record("webhook", subscription.id, "created", after=_snapshot(subscription))
    db.session.flush()
    return subscription, secret


def _snapshot(subscription: WebhookSubscription) -> dict[str, Any]:
    return {"url": subscription.url, "events": list(subscription.events),
            "include_internal": subscription.include_internal, "enabled": subscription.enabled}


def list_subscriptions(limit: int, cursor: str | None) -> tuple[list[WebhookSubscription], str | None]:
    """Return one page of the subscriptions, oldest first."""
    return page(db.session, sa.select(WebhookSubscription), LIST_KEYS, limit, cursor, purpose="webhooks")


def subscription_or_404(subscription_id: uuid.UUID, lock: bool = False) -> WebhookSubscription:
    stmt = sa.select(WebhookSubscription).where(WebhookSubscription.id == subscription_id)
    if lock:
        stmt = stmt.with_for_update()
    found = db.session.execute(stmt).scalar_one_or_none()
    if found is None:
        raise NotFound("No such webhook.")
    return found


def change_subscription(subscription_id: uuid.UUID, changes: dict[str, Any]) -> WebhookSubscription:
    """Change a subscription; `enabled: true` turns a disabled one back on and forgets its failures.

    A new URL is checked before the subscription is locked (the check may wait on DNS), and after it is
    found: another organization's webhook is 404 whatever the body says.
    """
    if "url" in changes:
        subscription_or_404(subscription_id)
        targets.check_saved(changes["url"])
    subscription = subscription_or_404(subscription_id, lock=True)
    before = _snapshot(subscription)
    if "events" in changes:
        changes["events"] = sorted(set(changes["events"]))
    enabling = changes.get("enabled") is True and not subscription.enabled
    for field, value in changes.items():
        setattr(subscription, field, value)
    if enabling:
        subscription.disabled_reason = None
        subscription.disabled_at = None
        subscription.consecutive_failures = 0
        subscription.failing_since = None
    elif changes.get("enabled") is False and subscription.disabled_at is None:
        subscription.disabled_reason = "Disabled by an admin."
        subscription.disabled_at = datetime.now(UTC)
    after = _snapshot(subscription)
    if after != before:
        audit.record("webhook", subscription.id, "updated", before=before, after=after)
    db.session.flush()
    return subscription


def delete_subscription(subscription: WebhookSubscription) -> None:
    """Delete a subscription with its delivery log; nothing more is sent to it."""
    audit.record("webhook", subscription.id, "deleted", before=_snapshot(subscription))
    db.session.delete(subscription)
    db.session.flush()


def rotate_secret(subscription: WebhookSubscription, secret: str | None,
                  grace_seconds: int = DEFAULT_GRACE) -> tuple[WebhookSubscription, str]:
    """Give a subscription a new secret; the old one keeps signing too for `grace_seconds`.

    An earlier rotation's secret keeps its own grace period; a grace of 0 ends every earlier
    secret at once (a leak). At most `MAX_PREVIOUS_SECRETS` sign beside the current one.
    """
    secret = secret or new_secret()
    if secret == subscription.secret:
        raise Conflict("The new secret is the current one.")
    now = datetime.now(UTC)
    earlier: list[dict[str, str]] = []
    if grace_seconds > 0:
        earlier = [p for p in subscription.secrets_in_grace(now) if p["secret"] != secret]
        if len(earlier) >= MAX_PREVIOUS_SECRETS:
            raise Conflict(f"{MAX_PREVIOUS_SECRETS} earlier secrets still sign deliveries; rotate with no "
                           "grace period, or once one of them has expired.")
        expires = now + timedelta(seconds=grace_seconds)
        earlier.insert(0, {"secret": subscription.secret, "expires_at": expires.isoformat()})
    subscription.previous_secrets = earlier
    subscription.secret = secret
    audit.record("webhook", subscription.id, "secret_rotated", after={"grace_seconds": grace_seconds})
    db.session.flush()
    return subscription, secret


def signing_secrets(subscription: WebhookSubscription, now: datetime) -> list[str]:
    """Return the secrets that sign a delivery now: the current one, then the earlier ones in their grace."""
    return [subscription.secret, *(p["secret"] for p in subscription.secrets_in_grace(now))]


def list_attempts(subscription: WebhookSubscription, limit: int, cursor: str | None,
                  event_id: uuid.UUID | None = None, status: str | None = None
                  ) -> tuple[list[WebhookAttempt], str | None]:
    """Return one page of a subscription's delivery log, newest first."""
    stmt = sa.select(WebhookAttempt).where(WebhookAttempt.subscription_id == subscription.id)
    if event_id is not None:
        stmt = stmt.where(WebhookAttempt.event_uid == event_id)
    if status is not None:
        stmt = stmt.where(WebhookAttempt.state == status)
    return page(db.session, stmt, LOG_KEYS, limit, cursor, purpose=f"webhook-log:{subscription.id}")


def attempt_or_404(subscription: WebhookSubscription, attempt_id: uuid.UUID) -> WebhookAttempt:
    found = db.session.execute(
        sa.select(WebhookAttempt).where(WebhookAttempt.id == attempt_id,
                                        WebhookAttempt.subscription_id == subscription.id)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound("No such delivery.")
    return found


def redeliver(subscription: WebhookSubscription, attempt_id: uuid.UUID) -> WebhookDelivery:
    """Send an attempt's event again, once, now (a delivery still retrying is just brought forward)."""
    attempt = attempt_or_404(subscription, attempt_id)
    delivery = db.session.execute(
        sa.select(WebhookDelivery).where(WebhookDelivery.id == attempt.delivery_id).with_for_update()
    ).scalar_one()
    now = datetime.now(UTC)
    if delivery.leased_until is not None and delivery.leased_until > now:
        raise Conflict("This event is being delivered right now; look at the log again in a few seconds.")
    if not wants(subscription, db.session.get(Event, delivery.event_id)):
        raise Conflict("This webhook no longer receives this event (its type, or internal notes, were taken off).")
    if delivery.state != "pending" or not subscription.enabled:
        delivery.manual = True  # one send, asked for: a disabled webhook's too (its retries had stopped)
    delivery.state = "pending"
    delivery.next_attempt_at = now
    delivery.enqueued_at = marked_enqueued()
    audit.record("webhook", subscription.id, "redelivered", after={"event_id": str(attempt.event_uid)})
    unit_of_work.after_commit(DELIVERIES, (current_tenant().slug, delivery.id))
    db.session.flush()
    return delivery


def delivery_view(delivery: WebhookDelivery) -> dict[str, Any]:
    event = db.session.get(Event, delivery.event_id)
    return {"id": delivery.id, "event_id": event.uid, "event_type": event.type, "state": delivery.state,
            "attempts": delivery.attempts, "next_attempt_at": delivery.next_attempt_at}


def fan_out(events: list[RecordedEvent]) -> None:
    """Write a delivery for each public event and each enabled subscription that wants it.

    Runs in the transaction that records the events (see `app.outbox.on_record`). Internal
    notes, and attachments hidden from requesters, go only to subscriptions that opted in with
    `include_internal`.
    """
    public = [e for e in events if e.data is not None]
    if not public:
        return
    subscriptions = db.session.execute(
        sa.select(WebhookSubscription.id, WebhookSubscription.events, WebhookSubscription.include_internal)
        .where(WebhookSubscription.enabled.is_(True))
    ).all()
    marked = marked_enqueued()
    rows = [{"subscription_id": s.id, "event_id": e.id, "enqueued_at": marked}
            for e in public for s in subscriptions if wants(s, e)]
    if not rows:
        return
    slug = current_tenant().slug
    created = db.session.execute(
        insert(WebhookDelivery).values(rows).on_conflict_do_nothing().returning(WebhookDelivery.id)
    ).scalars().all()
    for delivery_id in created:
        unit_of_work.after_commit(DELIVERIES, (slug, delivery_id))


def marked_enqueued() -> sa.ColumnElement | None:
    """The `enqueued_at` of deliveries a transaction writes: the time of writing if it hands them on itself
    once it commits (the fast path), so the relay's sweep meanwhile does not hand them on too; else none,
    for the sweep. The clock's time, not `now()`, the transaction's start, which in a long transaction
    was already stale when it committed."""
    return sa.func.clock_timestamp() if current_app.config["OUTBOX_FAST_PATH"] else None


def deliveries_in_sql(event: sa.CTE, topic: str, internal: sa.ColumnElement[bool] | None) -> sa.Insert:
    """Return the INSERT of `fan_out`'s deliveries for an event recorded in SQL (see `recorded_in_sql`)."""
    s = WebhookSubscription
    wanted = [s.enabled.is_(True), sa.literal(topic) == sa.any_(s.events)]
    if internal is not None:
        wanted.append(sa.or_(s.include_internal.is_(True), sa.not_(internal)))
    return insert(WebhookDelivery).from_select(
        [WebhookDelivery.subscription_id, WebhookDelivery.event_id],
        sa.select(s.id, event.c.id).where(*wanted), include_defaults=False).on_conflict_do_nothing()


def wants(subscription: Any, event: Any) -> bool:
    """Tell whether a subscription receives an event now: its type, and an internal one only if opted in.

    Asked at fan-out and again before every send, so turning `include_internal` off (or taking an
    event type off) also stops deliveries already waiting for a retry.
    """
    return event.type in subscription.events and (subscription.include_internal or not _is_internal(event))


def _is_internal(event: RecordedEvent | Event) -> bool:
    """Tell whether an event is about something requesters may not see (a note, or a note's file)."""
    data = event.data or {}
    return any(isinstance(data.get(k), dict) and data[k].get("internal") for k in ("message", "attachment"))
