"""Sign-in resists brute force and enumeration without locking out the real user; hashing is bounded."""

from __future__ import annotations

import secrets
import threading
import time

import pytest
from argon2 import PasswordHasher

from app import create_app
from app.auth.throttle import DEVICE_COOKIE
from app.people import passwords
from app.people.models import User
from tests.helpers import app_config


def _login(client, tenant, password: str, address: str = "10.0.0.1", email: str | None = None, **kw):
    return client.post(f"/t/{tenant.slug}/login", data={"email": email or tenant.admin_email,
                                                         "password": password},
                       environ_base={"REMOTE_ADDR": address}, **kw)


@pytest.fixture
def strict_app(services):
    return create_app(app_config(services, LOGIN_MAX_FAILURES=3, LOGIN_MAX_FAILURES_PER_ADDRESS=6,
                                 LOGIN_MAX_FAILURES_PER_ACCOUNT=8))


def test_repeated_failures_wait_even_with_the_right_password(strict_app, tenant):
    client = strict_app.test_client()
    for _ in range(3):
        assert _login(client, tenant, "wrong password").status_code == 401
    blocked = _login(client, tenant, tenant.admin_password)
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert b"Too many failed sign-ins" in blocked.data


def test_an_attackers_failures_do_not_block_the_user_elsewhere(strict_app, tenant):
    attacker, user = strict_app.test_client(), strict_app.test_client()
    for _ in range(5):
        _login(attacker, tenant, "wrong password", address="203.0.113.9")
    assert _login(attacker, tenant, tenant.admin_password, address="203.0.113.9").status_code == 429
    assert _login(user, tenant, tenant.admin_password, address="198.51.100.7").status_code == 302


def test_a_distributed_attack_holds_back_new_browsers_but_not_a_known_device(strict_app, tenant):
    known = strict_app.test_client()
    assert _login(known, tenant, tenant.admin_password, address="198.51.100.7").status_code == 302
    assert known.get_cookie(DEVICE_COOKIE, path=f"/t/{tenant.slug}") is not None
    for i in range(8):  # failures from many addresses, under each pair's and address's limit
        _login(strict_app.test_client(), tenant, "wrong password", address=f"203.0.113.{i}")
    stranger = _login(strict_app.test_client(), tenant, tenant.admin_password, address="192.0.2.1")
    assert stranger.status_code == 429
    assert _login(known, tenant, tenant.admin_password, address="192.0.2.2").status_code == 302


def test_every_spelling_of_an_email_shares_its_accounts_counters(strict_app, tenant):
    """"İ" and a final "Σ" fold one way in Python and another in SQL, where the sign-in looks the account up."""
    local, domain = tenant.admin_email.split("@")
    assert "i" in local
    dotted = local.replace("i", "İ", 1) + "@" + domain  # signs in to the same account
    client = strict_app.test_client()
    for _ in range(3):
        assert _login(client, tenant, "wrong password", address="10.9.9.9").status_code == 401
    assert _login(client, tenant, tenant.admin_password, address="10.9.9.9").status_code == 429
    for email in (dotted, tenant.admin_email.upper()):
        assert _login(client, tenant, "wrong password", address="10.9.9.9", email=email).status_code == 429
        assert _login(client, tenant, tenant.admin_password, address="10.9.9.9", email=email).status_code == 429
    assert _login(strict_app.test_client(), tenant, tenant.admin_password, address="10.1.1.1",
                  email=dotted).status_code == 302  # the spelling works, from an address not held back


def test_one_address_spraying_many_accounts_waits(strict_app, make_tenant):
    sprayer = strict_app.test_client()
    targets = [make_tenant() for _ in range(3)]
    for target in targets:
        for _ in range(2):
            _login(sprayer, target, "wrong password", address="203.0.113.50")
    assert _login(sprayer, targets[0], targets[0].admin_password, address="203.0.113.50").status_code == 429


def test_an_unknown_email_costs_a_hash_like_a_known_one(app, tenant, monkeypatch):
    calls = []
    real_verify = PasswordHasher.verify
    monkeypatch.setattr(PasswordHasher, "verify", lambda self, h, p: calls.append(h) or real_verify(self, h, p))
    client = app.test_client()
    assert _login(client, tenant, "wrong password", email="nobody@nowhere.example", address="10.9.9.9"
                  ).status_code == 401
    assert _login(client, tenant, "wrong password", address="10.9.9.8").status_code == 401
    assert len(calls) == 2  # one verification each: the unknown email against a dummy hash


def test_hashes_use_owasp_argon2id_parameters_and_bounded_concurrency(services):
    app = create_app(app_config(services, PASSWORD_HASH_FAST=False, PASSWORD_HASH_CONCURRENCY=2))
    running, most = [0], [0]
    lock = threading.Lock()

    def slow_verify(self, hash_, password):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return True

    with app.app_context():
        hashed = passwords.hash_password("a long password")
        assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        hashing = passwords._hashing()
        original = type(hashing.hasher).verify
        type(hashing.hasher).verify = slow_verify
        try:
            threads = [threading.Thread(target=lambda: _check_in(app, hashed)) for _ in range(10)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            type(hashing.hasher).verify = original
    assert most[0] == 2


def _check_in(app, hashed: str) -> None:
    with app.app_context():
        passwords.check_password(hashed, "a long password")


def test_an_old_hash_is_replaced_at_the_next_sign_in(services, tenant, in_tenant):
    app = create_app(app_config(services, PASSWORD_HASH_FAST=False))
    old = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash(tenant.admin_password)
    with in_tenant(tenant) as session:
        session.query(User).filter(User.email == tenant.admin_email).update({"password_hash": old})
        session.commit()
    assert _login(app.test_client(), tenant, tenant.admin_password, address="10.7.7.7").status_code == 302
    with in_tenant(tenant) as session:
        new = session.query(User.password_hash).filter(User.email == tenant.admin_email).scalar()
    assert new != old and new.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_signups_are_limited_per_client_address(services):
    app = create_app(app_config(services, SIGNUP_RATE_LIMIT_PER_HOUR=2))
    client = app.test_client()
    # Networks of this test alone (IPv6's documentation range, counted by /64): others pick theirs at random
    # among the IPv4 ones, and one that picked the same within the hour used up its signups.
    address, elsewhere = (f"2001:db8:{secrets.token_hex(2)}:{secrets.token_hex(2)}::{n}" for n in (1, 2))

    def signup(slug_suffix: str, where: str = address):
        return client.post("/api/v1/signup", json={
            "name": "Org", "slug": f"lim-{slug_suffix}-{time.time_ns() % 10**9}", "admin_email": "a@b.example",
            "admin_password": "long password"}, environ_base={"REMOTE_ADDR": where})

    assert signup("a").status_code == 201
    assert signup("b").status_code == 201
    refused = signup("c")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert refused.get_json()["code"] == 429
    page = client.post("/signup", data={"name": "Org", "slug": f"lim-page-{time.time_ns() % 10**9}",
                                        "admin_email": "a@b.example", "admin_password": "long password"},
                       environ_base={"REMOTE_ADDR": address})
    assert page.status_code == 429 and b"Too many organizations" in page.data
    assert signup("d", where=elsewhere).status_code == 201


def test_the_client_address_comes_only_through_trusted_proxies(services):
    untrusting = create_app(app_config(services, SIGNUP_RATE_LIMIT_PER_HOUR=1)).test_client()
    trusting = create_app(app_config(services, SIGNUP_RATE_LIMIT_PER_HOUR=1, TRUSTED_PROXIES=1)).test_client()
    proxy = f"10.1.{int(time.time()) % 250}.1"

    def signup(client, forwarded_for: str):
        return client.post("/api/v1/signup", json={
            "name": "Org", "slug": f"px-{time.time_ns() % 10**10}", "admin_email": "a@b.example",
            "admin_password": "long password"},
            headers={"X-Forwarded-For": forwarded_for}, environ_base={"REMOTE_ADDR": proxy})

    # Without trusted proxies a forged X-Forwarded-For does not make a new client.
    assert signup(untrusting, "192.0.2.1").status_code == 201
    assert signup(untrusting, "192.0.2.2").status_code == 429
    # Behind one trusted proxy each forwarded client is counted on its own.
    assert signup(trusting, f"198.51.{int(time.time()) % 250}.1").status_code == 201
    assert signup(trusting, f"198.51.{int(time.time()) % 250}.2").status_code == 201


def test_concurrent_guesses_are_counted_before_any_is_checked(strict_app, tenant, monkeypatch):
    """Guesses sent at once may not all pass the throttle before the first failure is counted."""
    from app.people import services as people_services

    guesses = 8
    checked, answered = [], []
    lock = threading.Condition()
    release = threading.Event()

    def gated_check(password_hash, password):
        with lock:
            checked.append(password)
            lock.notify_all()
        release.wait(30)
        return False

    monkeypatch.setattr(people_services, "check_password", gated_check)
    address = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"

    def guess(i: int) -> None:
        status = _login(strict_app.test_client(), tenant, f"guess {i}", address=address).status_code
        with lock:
            answered.append(status)
            lock.notify_all()

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(guesses)]
    for thread in threads:
        thread.start()
    with lock:  # every guess is either waiting inside the password check or answered already
        assert lock.wait_for(lambda: len(checked) + len(answered) == guesses, timeout=60)
    release.set()
    for thread in threads:
        thread.join()
    assert len(checked) == strict_app.config["LOGIN_MAX_FAILURES"], "only the allowed tries reach the password"
    assert sorted(answered) == [401] * 3 + [429] * (guesses - 3)
    assert _login(strict_app.test_client(), tenant, tenant.admin_password, address=address).status_code == 429


def test_failure_counters_expire_with_their_window(strict_app, tenant):
    """Counters that never expired would lock an address or account out for good."""
    from app.auth import throttle
    from app.extensions import db, redis_client
    from tenants import active_tenant

    address = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
    assert _login(strict_app.test_client(), tenant, "wrong password", address=address).status_code == 401
    with strict_app.test_request_context(environ_base={"REMOTE_ADDR": address}):
        ref = active_tenant(tenant.slug).ref()
        db.session.rollback()
        counters = throttle._keys(ref, tenant.admin_email)
        for name, (key, _, window) in counters.items():
            assert redis_client().get(key) is not None, name
            assert 0 < redis_client().ttl(key) <= window, (name, redis_client().ttl(key))
