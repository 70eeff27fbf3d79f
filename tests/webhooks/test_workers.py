"""Deliveries in real worker processes: the fast path, and a worker killed in the middle of a POST."""

from __future__ import annotations

import json
import signal
import time

import sqlalchemy as sa

from app.embedded import stop_process
from app.outbox.dispatch import relay_once
from tests.helpers import new_ticket, subscribe_webhook, verify, wait_until, webhook_attempts
from tests.servers import start_worker

WORKER_ENV = {"WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "1", "WEBHOOK_TOTAL_TIMEOUT": "2", "WEBHOOK_CONNECT_TIMEOUT": "1",
              "WEBHOOK_READ_TIMEOUT": "2"}


def test_a_worker_killed_mid_delivery_leaves_it_to_the_next(hooks, services, tenant, receiver, tmp_path,
                                                            monkeypatch):
    monkeypatch.setitem(hooks.config, "OUTBOX_REDELIVER_AFTER", 0.5)
    held = []
    receiver.stall = lambda n, handler: (held.append(n) or time.sleep(30) or True) if n == 0 else False
    hook = subscribe_webhook(tenant, receiver.url)
    first = start_worker(services.database_url, services.redis_url, tmp_path, "hooks-1", "webhooks", **WORKER_ENV)
    second = None
    try:
        new_ticket(tenant.api, "delivered at least once")
        with hooks.app_context():
            relay_once(fresh=True, slugs={tenant.slug})  # what the relay does on the create's wake
        wait_until(lambda: held, "the worker to start posting", timeout=30)
        stop_process(first, signal.SIGKILL, 5)
        second = start_worker(services.database_url, services.redis_url, tmp_path, "hooks-2", "webhooks",
                              **WORKER_ENV)

        def relayed_and_delivered() -> bool:
            with hooks.app_context():
                relay_once()
            return len(receiver.requests) >= 2

        wait_until(relayed_and_delivered, "the relay to hand the delivery to the second worker", every=0.5)
        wait_until(lambda: webhook_attempts(tenant, hook)[-1]["status"] == "succeeded", "the attempt to be logged")
    finally:
        stop_process(first, signal.SIGKILL, 5)
        if second is not None:
            stop_process(second, signal.SIGTERM, 10)
    killed, redone = webhook_attempts(tenant, hook)
    assert (killed["attempt"], killed["status"]) == (1, "failed") and "worker stopped" in killed["error"]
    assert (redone["attempt"], redone["status"]) == (2, "succeeded")
    assert receiver.requests[0].body == receiver.requests[1].body
    assert json.loads(receiver.requests[1].body)["data"]["ticket"]["title"] == "delivered at least once"
    assert verify(hook["secret"], receiver.requests[1].headers, receiver.requests[1].body)



def test_retries_wait_in_the_database_and_enter_the_queue_through_the_tenants_share(
        hooks, services, tenant, receiver, tmp_path, monkeypatch, in_tenant):
    """A tenant's retries were scheduled in RQ outside its share (the job's own release took back the
    place the retry's enqueue had reserved), so once due they all entered the queue at once, ahead of
    other tenants' deliveries. They now wait in the database, and the sweep hands them on as places free."""
    from rq.registry import ScheduledJobRegistry

    from app.extensions import redis_client
    from app.queues import share_key
    from app.webhooks.models import WebhookDelivery

    monkeypatch.setitem(hooks.config, "TENANT_QUEUED_JOBS", 1)
    receiver.answer = lambda n: (503, {}, b"down")
    failing = subscribe_webhook(tenant, receiver.url, ["ticket.created"])
    worker = start_worker(services.database_url, services.redis_url, tmp_path, "hooks-retry", "webhooks",
                          **WORKER_ENV, TENANT_QUEUED_JOBS="1", WEBHOOK_RETRY_BASE_SECONDS="120",
                          WEBHOOK_RETRY_MAX_SECONDS="120")
    try:
        for n in range(3):
            new_ticket(tenant.api, f"its receiver is down {n}")

        def all_tried_once() -> bool:
            with hooks.app_context():
                relay_once(slugs={tenant.slug})
            return len(webhook_attempts(tenant, failing)) == 3

        wait_until(all_tried_once, "each delivery's first attempt, one place at a time", every=0.3, timeout=30)
        wait_until(lambda: all(a["status"] == "failed" for a in webhook_attempts(tenant, failing)),
                   "the attempts to be logged")
        with hooks.app_context():
            connection = redis_client()
            assert ScheduledJobRegistry("webhooks", connection=connection).count == 0
            assert connection.zcard(share_key(tenant.slug, "webhooks")) == 0
        with in_tenant(tenant) as session:  # their backoff is over
            session.execute(sa.update(WebhookDelivery).values(next_attempt_at=sa.func.now()))
            session.commit()
        with hooks.app_context():
            relay_once(slugs={tenant.slug})  # all three are due: the share's one place takes one
        wait_until(lambda: len(webhook_attempts(tenant, failing)) == 4, "the sweep to hand a retry on", timeout=30)
        time.sleep(1)  # time for any other it handed on to be tried
    finally:
        stop_process(worker, signal.SIGTERM, 10)
    assert sorted(a["attempt"] for a in webhook_attempts(tenant, failing)) == [1, 1, 1, 2]
