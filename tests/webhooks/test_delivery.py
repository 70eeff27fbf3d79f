"""Deliveries to a real HTTP receiver: signed, retried after failures, disabled, redelivered, rotated."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from app.webhooks.models import WebhookDelivery
from tests.helpers import new_ticket, post_message, subscribe_webhook, verify, webhook_attempts


def test_a_delivery_is_signed_and_the_signature_verifies(hooks, tenant, receiver, run_deliveries):
    hook = subscribe_webhook(tenant, receiver.url, ["ticket.created", "ticket.closed"])
    assert hook["secret"].startswith("whsec_") and hook["enabled"] is True
    ticket = new_ticket(tenant.api, "Printer on fire", priority="urgent")
    run_deliveries(tenant)

    [got] = receiver.requests
    assert got.path == "/hooks" and got.headers["Content-Type"] == "application/json"
    assert verify(hook["secret"], got.headers, got.body)
    assert not verify("whsec_not-the-secret", got.headers, got.body)
    assert not verify(hook["secret"], got.headers, got.body + b" ")  # the raw body is what is signed
    event = json.loads(got.body)
    assert set(event) == {"id", "type", "created_at", "data"} and event["type"] == "ticket.created"
    assert event["data"]["ticket"]["id"] == ticket["id"] and event["data"]["ticket"]["number"] == ticket["number"]
    assert got.headers["X-Webhook-Id"] == event["id"] and got.headers["X-Webhook-Event"] == "ticket.created"
    assert abs(int(got.headers["X-Webhook-Timestamp"]) - got.at) <= 2

    [attempt] = webhook_attempts(tenant, hook)
    assert attempt["status"] == "succeeded" and attempt["attempt"] == 1 and attempt["redelivery"] is False
    assert attempt["response"]["status_code"] == 200 and attempt["response"]["body"] == "ok"
    assert attempt["request"]["body"] == got.body.decode() and attempt["request"]["url"] == receiver.url
    assert attempt["latency_ms"] >= 0 and attempt["error"] is None and attempt["event_id"] == event["id"]
    # The feed serves the very same event.
    feed = tenant.api.get("/api/v1/events", query_string={"types": "ticket.created"}).get_json()
    assert [e for e in feed["items"] if e["id"] == event["id"]] == [event]


def test_a_failed_attempt_is_retried_with_a_fresh_signature(hooks, tenant, receiver, run_deliveries):
    receiver.answer = lambda n: (500, {}, b"try later") if n == 0 else (204, {}, b"")
    hook = subscribe_webhook(tenant, receiver.url)
    new_ticket(tenant.api)
    run_deliveries(tenant)

    first, second = receiver.requests
    assert first.body == second.body  # the same event, byte for byte
    assert all(verify(hook["secret"], r.headers, r.body) for r in (first, second))
    failed, succeeded = webhook_attempts(tenant, hook)
    assert (failed["attempt"], failed["status"], failed["response"]["status_code"]) == (1, "failed", 500)
    assert failed["error"] == "HTTP 500." and failed["response"]["body"] == "try later"
    assert failed["next_retry_at"] is not None and failed["delivery_id"] == succeeded["delivery_id"]
    assert (succeeded["attempt"], succeeded["status"], succeeded["response"]["status_code"]) == (2, "succeeded", 204)
    assert tenant.api.get(f"/api/v1/webhooks/{hook['id']}").get_json()["consecutive_failures"] == 0


def test_backoff_doubles_with_jitter_over_about_a_day(app):
    from app.webhooks.delivery import backoff

    with app.app_context():
        delays = [backoff(n) for n in range(1, app.config["WEBHOOK_MAX_ATTEMPTS"])]
    assert 24 <= delays[0] <= 36 and 48 <= delays[1] <= 72
    assert all(d <= 4 * 3600 * 1.2 for d in delays)
    assert 18 * 3600 <= sum(delays) <= 30 * 3600  # retried for about a day


def test_disabled_after_repeated_failures_then_enabled_and_redelivered(hooks, tenant, receiver, run_deliveries,
                                                                       in_tenant):
    receiver.answer = lambda n: (500, {}, b"down")
    hook = subscribe_webhook(tenant, receiver.url)
    new_ticket(tenant.api, "first")
    run_deliveries(tenant)
    assert len(receiver.requests) == 3  # WEBHOOK_MAX_ATTEMPTS in this test
    state = tenant.api.get(f"/api/v1/webhooks/{hook['id']}").get_json()
    assert state["enabled"] is False and state["disabled_at"] is not None
    assert "3 failed attempts" in state["disabled_reason"] and "HTTP 500" in state["disabled_reason"]
    assert state["consecutive_failures"] == 3

    new_ticket(tenant.api, "while disabled")  # not delivered, and no delivery is even made for it
    with in_tenant(tenant) as session:
        assert session.execute(sa.select(sa.func.count()).select_from(WebhookDelivery)).scalar_one() == 1
    run_deliveries(tenant)
    assert len(receiver.requests) == 3

    receiver.answer = lambda n: (200, {}, b"back")
    enabled = tenant.api.patch(f"/api/v1/webhooks/{hook['id']}", json={"enabled": True}).get_json()
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None and enabled["consecutive_failures"] == 0
    last = webhook_attempts(tenant, hook)[-1]
    resp = tenant.api.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{last['id']}/redeliver")
    assert resp.status_code == 202, resp.get_json()
    assert resp.get_json()["state"] == "pending" and resp.get_json()["event_id"] == last["event_id"]
    run_deliveries(tenant)
    redelivered = webhook_attempts(tenant, hook)[-1]
    assert (redelivered["attempt"], redelivered["status"], redelivered["redelivery"]) == (4, "succeeded", True)
    assert json.loads(receiver.requests[-1].body)["id"] == last["event_id"]
    assert verify(hook["secret"], receiver.requests[-1].headers, receiver.requests[-1].body)


def test_a_redelivery_asked_of_a_disabled_webhook_while_its_delivery_waited_to_retry_is_sent(
        app, hooks, tenant, receiver, run_deliveries, monkeypatch):
    """It answered 202 "pending", then the delivery was failed unsent, while one that had already
    failed was sent: a redelivery is one send asked for by hand, whatever state it came from."""
    monkeypatch.setitem(app.config, "WEBHOOK_RETRY_BASE_SECONDS", 3600)
    monkeypatch.setitem(app.config, "WEBHOOK_RETRY_MAX_SECONDS", 7200)
    receiver.answer = lambda n: (500, {}, b"down")
    hook = subscribe_webhook(tenant, receiver.url)
    new_ticket(tenant.api)
    with pytest.raises(AssertionError, match="still pending"):  # one attempt, then a retry due in an hour
        run_deliveries(tenant, timeout=1)
    [waiting] = webhook_attempts(tenant, hook)
    assert waiting["status"] == "failed" and waiting["next_retry_at"] is not None
    assert tenant.api.patch(f"/api/v1/webhooks/{hook['id']}", json={"enabled": False}).status_code == 200
    receiver.answer = lambda n: (200, {}, b"ok")
    resp = tenant.api.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{waiting['id']}/redeliver")
    assert resp.status_code == 202 and resp.get_json()["state"] == "pending", resp.get_json()
    run_deliveries(tenant)
    assert [a["status"] for a in webhook_attempts(tenant, hook)] == ["failed", "succeeded"]
    assert len(receiver.requests) == 2


def test_a_redelivery_that_fails_is_not_retried_and_does_not_disable(hooks, tenant, receiver, run_deliveries):
    hook = subscribe_webhook(tenant, receiver.url)
    new_ticket(tenant.api)
    run_deliveries(tenant)
    receiver.answer = lambda n: (503, {}, b"")
    done = webhook_attempts(tenant, hook)[-1]
    assert tenant.api.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{done['id']}/redeliver").status_code == 202
    run_deliveries(tenant)
    assert [a["status"] for a in webhook_attempts(tenant, hook)] == ["succeeded", "failed"]
    assert tenant.api.get(f"/api/v1/webhooks/{hook['id']}").get_json()["enabled"] is True


def test_internal_notes_reach_only_webhooks_that_opt_in(hooks, tenant, receiver, run_deliveries):
    public = subscribe_webhook(tenant, receiver.url + "?who=public", ["message.created"])
    staff = subscribe_webhook(tenant, receiver.url + "?who=staff", ["message.created"], include_internal=True)
    ticket = new_ticket(tenant.api)
    assert post_message(tenant.api, ticket["id"], body="for everyone").status_code == 201
    assert post_message(tenant.api, ticket["id"], body="staff only", internal=True).status_code == 201
    run_deliveries(tenant)
    seen = {}
    for r in receiver.requests:
        seen.setdefault(r.path, []).append(json.loads(r.body)["data"]["message"]["body"])
    assert seen == {"/hooks?who=public": ["for everyone"], "/hooks?who=staff": ["for everyone", "staff only"]}
    assert len(webhook_attempts(tenant, public)) == 1 and len(webhook_attempts(tenant, staff)) == 2


@pytest.mark.parametrize("change", [{"include_internal": False}, {"events": ["ticket.created"]}])
def test_a_waiting_delivery_is_not_sent_once_the_webhook_no_longer_wants_it(hooks, tenant, receiver, run_deliveries,
                                                                             app, change):
    """Taking internal notes (or the event type) off a webhook also stops the retries already waiting."""
    from app.webhooks.delivery import deliver

    receiver.answer = lambda n: (503, {}, b"later")
    hook = subscribe_webhook(tenant, receiver.url, ["message.created"], include_internal=True)
    ticket = new_ticket(tenant.api)
    assert post_message(tenant.api, ticket["id"], body="SECRET staff note", internal=True).status_code == 201
    [delivery_id] = _pending(app, tenant)
    with _in(app, tenant):
        assert deliver(delivery_id).startswith("failed, retry in")
    receiver.answer = lambda n: (200, {}, b"ok")
    resp = tenant.api.patch(f"/api/v1/webhooks/{hook['id']}", json={"url": receiver.url + "?partner=1", **change})
    assert resp.status_code == 200, resp.get_json()
    assert run_deliveries(tenant) == ["no longer subscribed to this event"]
    assert len(receiver.requests) == 1  # the first, failed attempt only
    [failed] = webhook_attempts(tenant, hook)
    redeliver = tenant.api.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{failed['id']}/redeliver")
    assert redeliver.status_code == 409 and "no longer receives" in redeliver.get_json()["message"]
    run_deliveries(tenant)
    assert len(receiver.requests) == 1


def test_a_repeated_create_replays_the_secret_which_is_kept_only_sealed(hooks, tenant, receiver, in_tenant):
    from app.idempotency import IdempotencyRecord

    body, headers = {"url": receiver.url, "events": ["ticket.created"]}, {"Idempotency-Key": "hook-1"}
    first = tenant.api.post("/api/v1/webhooks", json=body, headers=headers)
    again = tenant.api.post("/api/v1/webhooks", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert len(tenant.api.get("/api/v1/webhooks").get_json()["items"]) == 1
    with in_tenant(tenant) as session:
        kept = session.execute(sa.select(IdempotencyRecord.key, IdempotencyRecord.response)).all()
    assert kept and all(key.startswith("sealed:") for key, _ in kept)
    assert all(first.get_json()["secret"].encode() not in bytes(response) for _, response in kept)


def _pending(app, tenant) -> list:
    with _in(app, tenant):
        from app.extensions import db

        return db.session.execute(sa.select(WebhookDelivery.id).where(WebhookDelivery.state == "pending")
                                  ).scalars().all()


@contextmanager
def _in(app, tenant):
    from app.extensions import db
    from tenants import active_tenant, tenant_context

    with app.app_context():
        db.session.rollback()
        with tenant_context(active_tenant(tenant.slug).ref()):
            yield


def test_each_type_delivers_its_resource(hooks, tenant, receiver, run_deliveries):
    subscribe_webhook(tenant, receiver.url, ["ticket.created", "ticket.updated", "ticket.assigned", "ticket.closed"])
    agent = tenant.user("agent")
    ticket = new_ticket(tenant.api)
    tenant.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"priority": "high", "assignee_id": agent["id"]})
    tenant.api.post(f"/api/v1/tickets/{ticket['id']}/close", json={"resolution": "done"})
    run_deliveries(tenant)
    events = {e["type"]: e for e in (json.loads(r.body) for r in receiver.requests)}  # in no promised order
    assert len(receiver.requests) == 4 and set(events) == {"ticket.created", "ticket.updated", "ticket.assigned",
                                                           "ticket.closed"}
    updated, assigned, closed = events["ticket.updated"], events["ticket.assigned"], events["ticket.closed"]
    assert updated["data"]["changes"] == ["assignee_id", "priority", "status"]
    assert updated["data"]["ticket"]["priority"] == "high" and updated["data"]["ticket"]["version"] == 2
    assert assigned["data"]["source"] == "manual" and assigned["data"]["ticket"]["assignee_id"] == agent["id"]
    assert closed["data"]["ticket"]["status"] == "closed" and closed["data"]["ticket"]["resolution"] == "done"


def test_rotation_signs_with_both_secrets_during_the_grace_period(hooks, tenant, receiver, run_deliveries):
    hook = subscribe_webhook(tenant, receiver.url, secret="an-old-secret-of-ours")
    assert hook["secret"] == "an-old-secret-of-ours"
    resp = tenant.api.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret", json={"grace_period_seconds": 3600})
    assert resp.status_code == 200, resp.get_json()
    rotated = resp.get_json()
    new = rotated["secret"]
    assert new.startswith("whsec_") and rotated["previous_secret_expires_at"] is not None
    assert "secret" not in tenant.api.get(f"/api/v1/webhooks/{hook['id']}").get_json()
    new_ticket(tenant.api)
    run_deliveries(tenant)
    got = receiver.requests[-1]
    assert len(got.headers["X-Signature"].split(",")) == 2
    assert verify(new, got.headers, got.body) and verify("an-old-secret-of-ours", got.headers, got.body)

    # Rotated again within the first grace: the first secret keeps its period, the second gets its own.
    again = tenant.api.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret", json={"grace_period_seconds": 60})
    assert again.status_code == 200 and again.get_json()["previous_secret_expires_at"] == rotated[
        "previous_secret_expires_at"]  # the first's end is the last
    new_ticket(tenant.api)
    run_deliveries(tenant)
    got = receiver.requests[-1]
    assert len(got.headers["X-Signature"].split(",")) == 3
    assert all(verify(s, got.headers, got.body) for s in (again.get_json()["secret"], new, "an-old-secret-of-ours"))
    rotate = f"/api/v1/webhooks/{hook['id']}/rotate-secret"
    for _ in range(8):  # ten earlier secrets sign now, the most kept
        assert tenant.api.post(rotate, json={"grace_period_seconds": 60}).status_code == 200
    refused = tenant.api.post(rotate, json={"grace_period_seconds": 60})
    assert refused.status_code == 409 and "10 earlier secrets" in refused.get_json()["message"]

    resp = tenant.api.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret",
                           json={"secret": "the-newest-secret-here", "grace_period_seconds": 0})
    assert resp.status_code == 200 and resp.get_json()["previous_secret_expires_at"] is None
    new_ticket(tenant.api)
    run_deliveries(tenant)
    got = receiver.requests[-1]
    assert "," not in got.headers["X-Signature"]
    assert verify("the-newest-secret-here", got.headers, got.body)
    assert not verify(new, got.headers, got.body) and not verify("an-old-secret-of-ours", got.headers, got.body)


def test_the_replay_window_refuses_an_old_delivery_and_each_retry_is_stamped_afresh(hooks, tenant, receiver,
                                                                                   run_deliveries, monkeypatch):
    hook = subscribe_webhook(tenant, receiver.url)
    receiver.answer = lambda n: (500, {}, b"") if n == 0 else (200, {}, b"")
    new_ticket(tenant.api)
    with monkeypatch.context() as clock:
        clock.setattr("app.webhooks.sender.time.time", lambda: 1_700_000_000.0)  # the sender's clock is stale
        run_deliveries(tenant)
    first, second = receiver.requests
    assert first.headers["X-Webhook-Timestamp"] == "1700000000" == second.headers["X-Webhook-Timestamp"]
    # A receiver with a 5-minute window refuses both: a replayed or delayed delivery is worthless to an attacker.
    assert not verify(hook["secret"], first.headers, first.body)
    assert verify(hook["secret"], first.headers, first.body, now=1_700_000_000 + 299)
    assert not verify(hook["secret"], first.headers, first.body, now=1_700_000_000 + 301)
    # Redelivered later, the same event carries a new timestamp and verifies again.
    last = webhook_attempts(tenant, hook)[-1]
    tenant.api.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{last['id']}/redeliver")
    run_deliveries(tenant)
    third = receiver.requests[-1]
    assert third.body == first.body and abs(int(third.headers["X-Webhook-Timestamp"]) - time.time()) < 5
    assert verify(hook["secret"], third.headers, third.body)
