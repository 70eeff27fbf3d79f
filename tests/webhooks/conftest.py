"""Webhook test fixtures: a real HTTP receiver on loopback, and deliveries run in this process."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from app.webhooks.delivery import deliver
from app.webhooks.models import WebhookDelivery
from tenants import active_tenant, tenant_context


@pytest.fixture
def hooks(app, monkeypatch):
    """Let webhooks reach loopback receivers, retry at once, and give up after 3 attempts."""
    for name, value in {"WEBHOOK_ALLOW_PRIVATE_ADDRESSES": True, "WEBHOOK_RETRY_BASE_SECONDS": 0.01,
                        "WEBHOOK_RETRY_MAX_SECONDS": 0.05, "WEBHOOK_MAX_ATTEMPTS": 3,
                        "WEBHOOK_TOTAL_TIMEOUT": 3.0, "WEBHOOK_READ_TIMEOUT": 1.0,
                        "WEBHOOK_CONNECT_TIMEOUT": 1.0}.items():
        monkeypatch.setitem(app.config, name, value)
    return app


@pytest.fixture
def run_deliveries(app):
    """Return a function that makes every due attempt of a tenant's deliveries until none is left pending."""

    def run(tenant, timeout: float = 30) -> list[str]:
        outcomes = []
        deadline = time.monotonic() + timeout
        with app.app_context():
            from app.extensions import db

            ref = active_tenant(tenant.slug).ref()
            db.session.rollback()
            with tenant_context(ref):
                while time.monotonic() < deadline:
                    pending = db.session.execute(
                        sa.select(WebhookDelivery.id, WebhookDelivery.next_attempt_at)
                        .where(WebhookDelivery.state == "pending").order_by(WebhookDelivery.next_attempt_at)
                    ).all()
                    db.session.rollback()
                    if not pending:
                        return outcomes
                    for row in pending:
                        outcomes.append(deliver(row.id))
                    time.sleep(0.02)
        raise AssertionError(f"deliveries still pending after {timeout}s: {outcomes[-5:]}")

    return run
