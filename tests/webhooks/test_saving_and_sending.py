"""Saving a webhook waits on no DNS for long and holds nothing while it waits; its count cannot be raced
past; a receiver that took the event is not sent it again; every approved address is tried."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa

from app.webhooks import services, targets
from app.webhooks.services import MAX_SUBSCRIPTIONS
from tenants import schema_for
from tests.helpers import ApiClient, new_ticket, subscribe_webhook, webhook_attempts


@pytest.fixture
def slow_names(monkeypatch):
    """Make names under slow.example wait to resolve until the test ends (or `seconds`), then fail; return an
    event set once one is asked. Ended at teardown, so no lookup keeps its place into the next test."""
    asked, ended, real = threading.Event(), threading.Event(), socket.getaddrinfo

    def lookup(host, *args, **kwargs):
        if str(host).endswith("slow.example"):
            asked.set()
            ended.wait(30)
            raise socket.gaierror(socket.EAI_NONAME, "no such name")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(targets.socket, "getaddrinfo", lookup)
    yield asked
    ended.set()
    deadline = time.monotonic() + 10
    while targets._save_lookups._value < targets.SAVE_LOOKUPS and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_name_slow_to_resolve_is_saved_without_waiting_for_it_and_locks_nothing_meanwhile(hooks, tenant,
                                                                                            slow_names):
    """The lookup ran under the webhook's row lock with no time limit: a name whose DNS never answered held
    the lock, a pooled connection and the tenant's event feed for as long as the system resolver waited."""
    asked = slow_names
    hook = subscribe_webhook(tenant, "https://127.0.0.1/in")
    answers: dict[str, object] = {}

    def change() -> None:
        started = time.monotonic()
        answers["response"] = tenant.api.patch(f"/api/v1/webhooks/{hook['id']}",
                                               json={"url": "https://a.slow.example/in"})
        answers["seconds"] = time.monotonic() - started

    slow = threading.Thread(target=change)
    slow.start()
    assert asked.wait(10)
    started = time.monotonic()  # while the name is being looked up, the webhook can be changed
    other = ApiClient(hooks.test_client(), tenant.key)
    assert other.patch(f"/api/v1/webhooks/{hook['id']}", json={"description": "meanwhile"}).status_code == 200
    assert time.monotonic() - started < 1.5
    slow.join(20)
    assert answers["response"].status_code == 200
    assert answers["seconds"] < targets.SAVE_LOOKUP_SECONDS + 2  # not the lookup's time (until the test ends)
    saved = tenant.api.get(f"/api/v1/webhooks/{hook['id']}").get_json()
    assert saved["url"] == "https://a.slow.example/in" and saved["description"] == "meanwhile"


def test_a_create_with_an_idempotency_key_holds_no_transaction_id_while_its_name_is_looked_up(hooks, tenant,
                                                                                                 slow_names):
    """The key was claimed (an INSERT, so a transaction id) before the URL was looked up: every tenant's event
    feed on the shard serves only what is below the oldest running transaction, so each such create held
    every organization's feed still for up to `SAVE_LOOKUP_SECONDS`, and a few at a time held it for good."""
    asked = slow_names
    answers: dict[str, object] = {}

    def create() -> None:
        answers["response"] = tenant.api.post("/api/v1/webhooks", json={
            "url": "https://b.slow.example/in", "events": ["ticket.created"]}, headers={"Idempotency-Key": "slow-1"})

    slow = threading.Thread(target=create)
    slow.start()
    assert asked.wait(10)
    with hooks.app_context():
        from app.extensions import db

        holding = db.session.execute(sa.text(
            "select count(*) from pg_stat_activity where datname = current_database() and backend_xid is not null"
            " and pid <> pg_backend_pid()")).scalar_one()
        db.session.rollback()
    slow.join(20)
    assert holding == 0
    assert answers["response"].status_code == 201
    again = tenant.api.post("/api/v1/webhooks", json={"url": "https://b.slow.example/in", "events": ["ticket.created"]},
                            headers={"Idempotency-Key": "slow-1"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == answers["response"].get_json()["id"]
    assert len(tenant.api.get("/api/v1/webhooks").get_json()["items"]) == 1


def test_a_replay_of_a_create_is_answered_whatever_its_name_resolves_to_now(hooks, tenant, monkeypatch, slow_names):
    """The URL is checked before the key is claimed, so a replay was checked again: once the name resolved
    to a private address, or while every lookup place was taken, the webhook existed and the replay that
    alone shows its secret was refused."""
    monkeypatch.setitem(hooks.config, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False)
    answer = {"address": "93.184.216.34"}
    real = targets.socket.getaddrinfo

    def lookup(host, port, *args, **kwargs):
        if host == "flip.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer["address"], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(targets.socket, "getaddrinfo", lookup)
    body = {"url": "https://flip.example/in", "events": ["ticket.created"]}
    first = tenant.api.post("/api/v1/webhooks", json=body, headers={"Idempotency-Key": "flip-1"})
    assert first.status_code == 201
    answer["address"] = "10.0.0.5"
    again = tenant.api.post("/api/v1/webhooks", json=body, headers={"Idempotency-Key": "flip-1"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["secret"] == first.get_json()["secret"]
    fresh = tenant.api.post("/api/v1/webhooks", json=body, headers={"Idempotency-Key": "flip-2"})
    assert fresh.status_code == 422  # a new key is checked as ever
    threads = [threading.Thread(target=tenant.api.post, args=("/api/v1/webhooks",),
                                kwargs={"json": {"url": f"https://n{i}.slow.example/in", "events": ["ticket.created"]}})
               for i in range(targets.SAVE_LOOKUPS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while targets._save_lookups._value and time.monotonic() < deadline:
        time.sleep(0.02)
    busy = tenant.api.post("/api/v1/webhooks", json=body, headers={"Idempotency-Key": "flip-1"})
    assert busy.status_code == 201 and busy.headers["Idempotent-Replayed"] == "true"  # no lookup needed
    for thread in threads:
        thread.join(20)


def test_while_every_lookup_place_is_taken_a_name_is_refused_for_now_and_numbers_are_still_checked(
        hooks, tenant, slow_names, monkeypatch):
    """Let through unchecked, a busy process's saves took `localhost` and `127.000.000.001` (numbers the
    resolver reads as 127.0.0.1, which `ipaddress` does not) from any organization."""
    asked = slow_names
    monkeypatch.setitem(hooks.config, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False)
    threads = [threading.Thread(target=subscribe_webhook, args=(tenant, f"https://n{i}.slow.example/in"))
               for i in range(targets.SAVE_LOOKUPS)]
    for thread in threads:
        thread.start()
    assert asked.wait(10)
    time.sleep(0.3)  # every place is taken now
    started = time.monotonic()
    busy = tenant.api.post("/api/v1/webhooks", json={"url": "http://localhost/in", "events": ["ticket.created"]})
    assert busy.status_code == 503 and "try again" in busy.get_json()["message"]
    assert time.monotonic() - started < 1.5
    for url in ("http://127.0.0.1/in", "http://127.000.000.001/in", "http://0x7f.1/in", "http://012.0.0.1/in"):
        refused = tenant.api.post("/api/v1/webhooks", json={"url": url, "events": ["ticket.created"]})
        assert refused.status_code == 422, (url, refused.get_json())
    for thread in threads:
        thread.join(20)
    assert len(tenant.api.get("/api/v1/webhooks").get_json()["items"]) == targets.SAVE_LOOKUPS


def test_a_lookup_under_way_does_not_hold_back_the_process_exit():
    """Joined at exit, it kept a stopping worker past its grace time, and its wakes went with it."""
    script = ("import socket, time\n"
              "from app.webhooks import targets\n"
              "socket.getaddrinfo = lambda *a, **k: time.sleep(30)\n"
              "targets.SAVE_LOOKUP_SECONDS = 0.1\n"
              "assert targets._resolved_for_saving('stuck.example', 443) is None\n")
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert time.monotonic() - started < 15


def test_webhooks_created_at_once_stay_within_the_limit(hooks, tenant, monkeypatch):
    for i in range(MAX_SUBSCRIPTIONS - 5):
        subscribe_webhook(tenant, f"https://127.0.0.1/{i}")  # an address: no lookup
    together = threading.Barrier(10)
    real = targets.check_saved

    def lined_up(url: str) -> None:  # each request passes its check at once, as a real lookup's wait lines them up
        real(url)
        together.wait(60)

    monkeypatch.setattr(services.targets, "check_saved", lined_up)
    codes: list[int] = []

    def create(i: int) -> None:
        client = ApiClient(hooks.test_client(), tenant.key)
        codes.append(client.post("/api/v1/webhooks", json={"url": f"https://127.0.0.1/more{i}",
                                                           "events": ["ticket.created"]}).status_code)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert sorted(codes) == [201] * 5 + [409] * 5
    listed = tenant.api.get("/api/v1/webhooks", query_string={"limit": 100}).get_json()["items"]
    assert len(listed) == MAX_SUBSCRIPTIONS


def test_a_receiver_whose_body_stalls_after_a_2xx_took_the_event(hooks, tenant, receiver, run_deliveries):
    """It was recorded as failed and sent again: the receiver got the event twice or more."""

    def slow_body(n, handler) -> bool:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nreceived")
        handler.wfile.flush()
        time.sleep(4)  # past the read (1 s) and total (3 s) timeouts
        return True

    receiver.stall = slow_body
    hook = subscribe_webhook(tenant, receiver.url)
    new_ticket(tenant.api)
    run_deliveries(tenant)
    [attempt] = webhook_attempts(tenant, hook)
    assert attempt["status"] == "succeeded" and attempt["response"]["status_code"] == 200
    assert len(receiver.requests) == 1


def test_every_approved_address_is_tried_in_turn(hooks, tenant, receiver, run_deliveries, monkeypatch):
    """Only the first was: a receiver whose first address the worker cannot reach (IPv6 on a host without
    it, say) failed every attempt."""
    port = receiver.server.server_address[1]
    nothing_there = ipaddress.ip_address("127.0.0.2")  # loopback, but no one listens on the port there
    real = targets.resolve
    monkeypatch.setattr(targets, "resolve", lambda host, port: [nothing_there, ipaddress.ip_address("127.0.0.1")]
                        if host == "two.example" else real(host, port))
    hook = subscribe_webhook(tenant, f"http://two.example:{port}/hooks")
    new_ticket(tenant.api)
    run_deliveries(tenant)
    [attempt] = webhook_attempts(tenant, hook)
    assert attempt["status"] == "succeeded" and len(receiver.requests) == 1
    assert receiver.requests[0].headers["Host"] == f"two.example:{port}"


def test_the_webhook_count_lock_is_the_tenants_own(hooks, tenant, other_tenant, in_tenant):
    """The lock serialises one organization's creates, not everyone's."""
    with in_tenant(tenant) as session:
        session.execute(sa.text("select pg_advisory_xact_lock(hashtext('webhook_subscriptions'), hashtext(:s))"),
                        {"s": schema_for(tenant.slug)})
        started = time.monotonic()
        subscribe_webhook(other_tenant, "https://127.0.0.1/other")
        assert time.monotonic() - started < 5


def test_a_resolver_that_fails_in_an_odd_way_is_a_name_that_does_not_resolve(hooks, tenant, monkeypatch):
    """Raised on the lookup's thread, anything but the resolver's own errors left the save with no answer (500)."""
    real = socket.getaddrinfo

    def odd(host, *args, **kwargs):
        if host == "odd.example":
            raise ValueError("not what the resolver usually raises")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(targets.socket, "getaddrinfo", odd)
    subscribe_webhook(tenant, "https://odd.example/in")
