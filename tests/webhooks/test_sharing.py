"""Webhook deliveries and the tenant's share of the `webhooks` queue: the fast path's are not handed on twice."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from rq import Queue

from app.extensions import db, redis_client
from app.outbox.dispatch import relay_once
from app.queues import share_key
from app.webhooks.models import WebhookDelivery
from tenants import active_tenant, tenant_context
from tests.helpers import new_ticket, subscribe_webhook


@pytest.fixture
def one_place(hooks, tenant, monkeypatch):
    """The tenant gets one place in the webhooks queue, free at the start."""
    monkeypatch.setitem(hooks.config, "TENANT_QUEUED_JOBS", 1)
    with hooks.app_context():
        redis_client().delete(share_key(tenant.slug, "webhooks"))
    return hooks


@contextmanager
def _in(app, tenant) -> Iterator[None]:
    with app.app_context():
        db.session.rollback()
        with tenant_context(active_tenant(tenant.slug).ref()):
            yield


def _deliveries(app, tenant, hook: dict) -> list[WebhookDelivery]:
    with _in(app, tenant):
        found = db.session.execute(sa.select(WebhookDelivery).where(WebhookDelivery.subscription_id == hook["id"])
                                   .order_by(WebhookDelivery.created_at)).scalars().all()
        db.session.expunge_all()
        return found


def _queued(app, tenant) -> list[str]:
    """The deliveries the tenant has jobs for in the webhooks queue."""
    with app.app_context():
        jobs = Queue("webhooks", connection=redis_client()).get_jobs()
    return [job.args[1] for job in jobs if job is not None and job.args[0] == tenant.slug]


def test_a_delivery_the_fast_path_hands_on_is_not_handed_on_again_by_the_sweep(one_place, tenant, receiver):
    """The relay's sweep took a fast-path delivery for one nobody had handed on, and queued it a second time,
    beyond the tenant's share. One the full share refused keeps its mark: the relay hands it on once stale."""
    app = one_place
    hook = subscribe_webhook(tenant, receiver.url, ["ticket.updated"])
    ticket = new_ticket(tenant.api)
    assert tenant.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"priority": "high"}).status_code == 200
    [first] = _deliveries(app, tenant, hook)
    assert first.enqueued_at is not None and _queued(app, tenant) == [str(first.id)]
    with app.app_context():
        relay_once(slugs={tenant.slug})
    assert _queued(app, tenant) == [str(first.id)]  # once
    assert tenant.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"priority": "low"}).status_code == 200
    refused = _deliveries(app, tenant, hook)[1]
    assert refused.enqueued_at is not None and _queued(app, tenant) == [str(first.id)]  # the share is full
    with app.app_context():
        relay_once(slugs={tenant.slug})
    assert _queued(app, tenant) == [str(first.id)]
