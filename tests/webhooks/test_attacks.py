"""A stranger's attempts on webhooks: private targets, rebinding, redirects, hostile receivers, other tenants."""

from __future__ import annotations

import socket
import time
import uuid

import pytest
import sqlalchemy as sa

from tests.helpers import new_ticket, subscribe_webhook, webhook_attempts

PRIVATE_TARGETS = [
    "http://127.0.0.1/hook", "http://localhost:8080/", "http://LOCALHOST./", "http://0x7f.1/", "http://0177.0.0.1/",
    "http://2130706433/", "http://127.1/", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]/", "http://[64:ff9b::127.0.0.1]/", "http://[2002:7f00:1::]/",
    "http://10.0.0.5/", "http://192.168.1.1/", "http://172.16.0.1/", "http://100.64.0.1/", "http://[fd00::1]/",
    "http://[fe80::1]/", "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/",
    "http://0.0.0.0/", "http://0/", "http://224.0.0.1/", "http://255.255.255.255/",
    "http://[::ffff:0:7f00:1]/", "http://[::ffff:0:10.0.0.1]/", "http://192.0.0.8/",  # SIIT; IETF assignments
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/",  # fullwidth digits: IDNA turns them into 127.0.0.1
    "http://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3/",  # circled letters: IDNA makes "localhost"
]
NOT_HTTP = ["ftp://example.com/", "file:///etc/passwd", "gopher://127.0.0.1:25/", "javascript:alert(1)",
            "//example.com/", "example.com/hook", "http:///nohost", "http://user:pw@example.com/",
            "http://example.com/#frag", "http://exa mple.com/", "http://example.com:99999/",
            "http://example.com:0/", "http://example.com:00/", "dict://127.0.0.1:11211/"]
ALWAYS_REFUSED = ["http://169.254.169.254/", "http://[fd00:ec2::254]/", "http://100.100.100.200/", "http://0.0.0.0/",
                  "http://[::]/", "http://224.0.0.1/", "http://[::ffff:169.254.169.254]/",
                  "http://[::ffff:0:a9fe:a9fe]/", "http://169.254.170.23/", "http://[fd00:ec2::23]/",
                  "http://192.0.0.192/", "http://169.254.169.253/", "http://168.63.129.16/"]


def refusal(tenant, url: str) -> dict:
    resp = tenant.api.post("/api/v1/webhooks", json={"url": url, "events": ["ticket.created"]})
    assert resp.status_code == 422, (url, resp.status_code, resp.get_json())
    body = resp.get_json()
    assert set(body["errors"]) == {"url"}, (url, body)
    return body


@pytest.mark.parametrize("url", PRIVATE_TARGETS + NOT_HTTP)
def test_private_and_non_http_targets_are_refused(app, tenant, url):
    assert app.config["WEBHOOK_ALLOW_PRIVATE_ADDRESSES"] is False  # the default
    refusal(tenant, url)


def test_a_name_that_resolves_to_loopback_is_refused_without_saying_its_address(tenant, monkeypatch):
    real = socket.getaddrinfo
    monkeypatch.setattr("app.webhooks.targets.socket.getaddrinfo",
                        lambda host, *a, **k: real("127.0.0.1", *a, **k) if host == "hooks.example.net"
                        else real(host, *a, **k))
    body = refusal(tenant, "https://hooks.example.net/in")
    assert "hooks.example.net: it resolves to a loopback address" in body["message"]
    assert "127.0.0.1" not in str(body)  # a name's address would map the server's internal DNS for any admin


def test_metadata_and_non_unicast_stay_refused_on_a_self_hosted_instance(hooks, tenant, receiver):
    for url in ALWAYS_REFUSED:
        refusal(tenant, url)
    subscribe_webhook(tenant, receiver.url)  # while loopback is allowed there


def test_dns_rebinding_is_refused_at_connect_time(app, tenant, receiver, run_deliveries, monkeypatch):
    """The name resolves to a public address when saved, and to loopback when the delivery connects."""
    answers = iter([("93.184.216.34", 443)] + [("127.0.0.1", receiver.server.server_address[1])] * 10)

    def rebinding(host, port, *args, **kwargs):
        address = next(answers)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", address)]

    monkeypatch.setattr("app.webhooks.targets.socket.getaddrinfo", rebinding)
    monkeypatch.setitem(app.config, "WEBHOOK_MAX_ATTEMPTS", 1)
    hook = subscribe_webhook(tenant, f"http://rebind.example.net:{receiver.server.server_address[1]}/hooks")
    new_ticket(tenant.api)
    run_deliveries(tenant)
    assert receiver.requests == []  # never connected
    [attempt] = webhook_attempts(tenant, hook)
    assert attempt["status"] == "failed" and attempt["response"] is None
    assert attempt["error"].startswith("Refused before connecting: Deliveries cannot go to rebind.example.net: it "
                                       "resolves to a loopback address")


def test_a_redirect_to_a_private_address_is_not_followed(hooks, tenant, receiver, run_deliveries):
    receiver.answer = lambda n: (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"")
    hook = subscribe_webhook(tenant, receiver.url)
    new_ticket(tenant.api)
    run_deliveries(tenant)
    assert len(receiver.requests) == 3  # each attempt went to the receiver alone, never to the Location
    attempt = webhook_attempts(tenant, hook)[0]
    assert attempt["status"] == "failed" and attempt["response"]["status_code"] == 302
    assert "redirects are not followed" in attempt["error"]


def test_a_receiver_that_never_answers_times_out(hooks, tenant, receiver, run_deliveries, monkeypatch):
    monkeypatch.setitem(hooks.config, "WEBHOOK_MAX_ATTEMPTS", 1)
    receiver.stall = lambda n, handler: time.sleep(4) or True
    hook = subscribe_webhook(tenant, receiver.url)
    new_ticket(tenant.api)
    started = time.monotonic()
    run_deliveries(tenant)
    assert time.monotonic() - started < 3.5
    [attempt] = webhook_attempts(tenant, hook)
    assert attempt["status"] == "failed" and "Timed out" in attempt["error"] and attempt["latency_ms"] < 3000


def test_a_receiver_trickling_bytes_is_cut_off_by_the_total_timeout(hooks, tenant, receiver, run_deliveries,
                                                                    monkeypatch):
    monkeypatch.setitem(hooks.config, "WEBHOOK_MAX_ATTEMPTS", 1)

    def trickle(n, handler) -> bool:
        try:
            handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(100):  # one header byte at a time, each well within the read timeout
                handler.wfile.write(b"X")
                handler.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass
        return True

    receiver.stall = trickle
    hook = subscribe_webhook(tenant, receiver.url)
    new_ticket(tenant.api)
    started = time.monotonic()
    run_deliveries(tenant)
    assert time.monotonic() - started < 6  # WEBHOOK_TOTAL_TIMEOUT is 3 s here
    [attempt] = webhook_attempts(tenant, hook)
    assert attempt["status"] == "failed" and "Timed out" in attempt["error"]


def test_a_huge_response_is_read_only_in_part(hooks, tenant, receiver, run_deliveries):
    def flood(n, handler) -> bool:
        handler.send_response(200)
        handler.send_header("Content-Length", str(200 * 1024 * 1024))
        handler.end_headers()
        try:
            for _ in range(200 * 16):
                handler.wfile.write(b"A" * 65536)
        except OSError:
            pass  # we hung up after our cap
        return True

    receiver.stall = flood
    hook = subscribe_webhook(tenant, receiver.url)
    new_ticket(tenant.api)
    started = time.monotonic()
    run_deliveries(tenant)
    assert time.monotonic() - started < 5
    [attempt] = webhook_attempts(tenant, hook)
    assert attempt["status"] == "succeeded" and len(attempt["response"]["body"]) == 4096


def test_a_receivers_huge_headers_are_kept_only_in_part(hooks, tenant, receiver, run_deliveries):
    """Each header line may be 64 KiB: forty of them made every attempt store 1.7 MB."""
    receiver.answer = lambda n: (500, {f"X-Pad-{i}": "v" * 60000 for i in range(40)}, b"no")
    hook = subscribe_webhook(tenant, receiver.url)
    new_ticket(tenant.api)
    run_deliveries(tenant)
    for attempt in webhook_attempts(tenant, hook):  # three, all refused
        kept = attempt["response"]["headers"]
        assert attempt["response"]["status_code"] == 500 and "X-Pad-0" in kept and len(kept) <= 30
        assert sum(len(k) + len(v) for k, v in kept.items()) == 4096


def test_another_tenants_webhooks_and_deliveries_answer_404(hooks, tenant, other_tenant, receiver,
                                                             run_deliveries):
    theirs = subscribe_webhook(other_tenant, receiver.url)
    new_ticket(other_tenant.api)
    run_deliveries(other_tenant)
    their_attempt = webhook_attempts(other_tenant, theirs)[0]
    mine = subscribe_webhook(tenant, receiver.url)
    base = f"/api/v1/webhooks/{theirs['id']}"
    api = tenant.api
    for resp in (api.get(base), api.patch(base, json={"enabled": False}), api.delete(base),
                 api.get(f"{base}/deliveries"), api.get(f"{base}/deliveries/{their_attempt['id']}"),
                 api.post(f"{base}/deliveries/{their_attempt['id']}/redeliver"),
                 api.post(f"{base}/rotate-secret", json={}),
                 # their delivery under my webhook's id
                 api.get(f"/api/v1/webhooks/{mine['id']}/deliveries/{their_attempt['id']}"),
                 api.post(f"/api/v1/webhooks/{mine['id']}/deliveries/{their_attempt['id']}/redeliver")):
        assert resp.status_code == 404, resp.get_json()
    listed = api.get("/api/v1/webhooks").get_json()["items"]
    assert [w["id"] for w in listed] == [mine["id"]]
    still = other_tenant.api.get(base).get_json()
    assert still["enabled"] is True and len(webhook_attempts(other_tenant, theirs)) == 1


@pytest.mark.parametrize("role", ["agent", "requester"])
def test_only_admins_manage_webhooks(hooks, tenant, receiver, role):
    hook = subscribe_webhook(tenant, receiver.url)
    api = tenant.key_for(tenant.user(role))
    base = f"/api/v1/webhooks/{hook['id']}"
    for resp in (api.get("/api/v1/webhooks"), api.post("/api/v1/webhooks", json={"url": receiver.url,
                                                                                   "events": ["ticket.created"]}),
                 api.get(base), api.patch(base, json={"enabled": False}), api.delete(base),
                 api.get(f"{base}/deliveries"), api.post(f"{base}/rotate-secret", json={})):
        assert resp.status_code == 403, resp.get_json()
    # An admin key of a user who was demoted acts as what the user is now.
    assert tenant.api.get(base).status_code == 200


def _raw_reply(reply: bytes):
    def stall(n, handler) -> bool:
        handler.wfile.write(reply)
        handler.wfile.flush()
        handler.close_connection = True
        return True

    return stall


@pytest.mark.parametrize("kind", ["body", "header", "not http"])
def test_a_nul_in_the_receivers_answer_is_recorded_and_the_delivery_ends(hooks, tenant, receiver, run_deliveries,
                                                                         kind):
    """Postgres refuses NUL in text and JSONB: an answer holding one once left the attempt unrecorded,
    and the delivery was sent again every lease, for ever."""
    if kind == "body":
        receiver.answer = lambda n: (500, {}, b"bad\x00bytes")
    elif kind == "header":
        receiver.answer = lambda n: (200, {"X-Evil": "a\x00b"}, b"ok")
    else:
        receiver.stall = _raw_reply(b"\x00\x01binary protocol\r\n")
    hook = subscribe_webhook(tenant, receiver.url)
    new_ticket(tenant.api)
    run_deliveries(tenant)
    attempts = webhook_attempts(tenant, hook)
    if kind == "header":
        [attempt] = attempts
        assert attempt["status"] == "succeeded" and attempt["response"]["headers"]["X-Evil"] == "a\ufffdb"
        assert len(receiver.requests) == 1
        return
    assert [a["status"] for a in attempts] == ["failed"] * 3 == ["failed"] * len(receiver.requests)
    if kind == "body":
        assert attempts[0]["response"]["body"] == "bad\ufffdbytes"
    else:
        assert "\x00" not in attempts[0]["error"] and "\ufffd" in attempts[0]["error"]
    assert tenant.api.get(f"/api/v1/webhooks/{hook['id']}").get_json()["enabled"] is False


def test_a_delivery_whose_attempts_could_not_be_recorded_is_not_sent_for_ever(hooks, tenant, receiver, in_tenant,
                                                                              run_deliveries):
    """Whatever keeps an attempt's outcome from being recorded, the delivery ends at its last attempt."""
    from app.webhooks.delivery import UNRECORDED
    from app.webhooks.models import WebhookAttempt, WebhookDelivery

    hook = subscribe_webhook(tenant, receiver.url)
    receiver.answer = lambda n: (503, {}, b"")
    new_ticket(tenant.api)
    with in_tenant(tenant) as session:  # as a worker that died three times while recording would leave it
        session.execute(sa.update(WebhookDelivery).values(attempts=3))
        [delivery_id] = session.execute(sa.select(WebhookDelivery.id)).scalars().all()
        session.add(WebhookAttempt(id=uuid.uuid4(), delivery_id=delivery_id, subscription_id=uuid.UUID(hook["id"]),
                                   event_uid=uuid.uuid4(), event_type="ticket.created", attempt=3, manual=False,
                                   state="sending", url=receiver.url, request_headers={}, request_body="{}"))
        session.commit()
    assert run_deliveries(tenant) == ["gave up after 3 attempts"]
    assert receiver.requests == []
    [attempt] = webhook_attempts(tenant, hook)
    assert attempt["status"] == "failed" and attempt["error"] == UNRECORDED


def test_a_delivery_being_sent_is_left_to_its_sender(hooks, tenant, receiver, in_tenant, run_deliveries):
    """The give-up and still-wanted checks come after the lease: a second job must not end an attempt in flight."""
    from app.webhooks.models import WebhookDelivery

    subscribe_webhook(tenant, receiver.url)
    new_ticket(tenant.api)
    with in_tenant(tenant) as session:
        session.execute(sa.update(WebhookDelivery).values(
            attempts=3, leased_until=sa.func.now() + sa.text("interval '1 minute'")))
        session.commit()
    with in_tenant(tenant) as session:
        from app.webhooks.delivery import deliver

        [delivery_id] = session.execute(sa.select(WebhookDelivery.id)).scalars().all()
        assert deliver(delivery_id) == "not due, or another worker has it"
        assert session.execute(sa.select(WebhookDelivery.state)).scalar_one() == "pending"
