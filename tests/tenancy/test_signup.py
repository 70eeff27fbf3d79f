import secrets

import pytest


def signup(client, **overrides):
    body = {"name": "Acme", "slug": "acme-x", "admin_email": "a@acme.example", "admin_password": "hunter2hunter2"}
    return client.post("/api/v1/signup", json={**body, **overrides})


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def test_signup_creates_tenant_schema_admin_and_key(client, app):
    slug = unique("signup-ok")
    resp = signup(client, slug=slug)
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["tenant"]["slug"] == slug
    assert body["api_key"].startswith("tms_")
    me = client.get(f"/api/v1/users/{body['admin_id']}", headers={"Authorization": f"Bearer {body['api_key']}"})
    assert me.status_code == 200
    assert me.get_json()["role"] == "admin"


def test_taken_slug_is_409(client):
    slug = unique("taken")
    assert signup(client, slug=slug).status_code == 201
    resp = signup(client, slug=slug)
    assert resp.status_code == 409
    # The contract's shape: `errors` is for validation failures (422) only.
    assert resp.get_json() == {"code": 409, "status": "Conflict", "message": "This slug is taken."}


@pytest.mark.parametrize("slug", ["A", "a", "1abc", "ab_c", "-abc", "x" * 41, "www", "api", "admin", "public",
                                  "xn--80ak6aa92e", "ab--cd"])
def test_bad_or_reserved_slug_is_422(client, slug):
    resp = signup(client, slug=slug)
    assert resp.status_code == 422
    body = resp.get_json()
    assert body["status"] == "Unprocessable Entity"
    assert "slug" in body["errors"]


def test_missing_fields_and_malformed_json(client):
    resp = client.post("/api/v1/signup", json={"name": "x"})
    assert resp.status_code == 422
    assert {"slug", "admin_email", "admin_password"} <= set(resp.get_json()["errors"])
    resp = client.post("/api/v1/signup", data="{not json", content_type="application/json")
    assert resp.status_code == 400
    assert resp.get_json()["code"] == 400


def test_a_repeated_signup_with_its_idempotency_key_gets_the_first_answer(client, app):
    """A signup is a create like any other: its repeat replays the 201, the admin's key included,
    and creates nothing; the kept answer is sealed and the key kept only as an HMAC."""
    import sqlalchemy as sa

    from app.extensions import db
    from app.signup.models import SignupReplay

    slug = unique("idem")
    key = {"Idempotency-Key": f"signup-{slug}"}
    first = client.post("/api/v1/signup", headers=key, json={
        "name": "Acme", "slug": slug, "admin_email": "a@acme.example", "admin_password": "hunter2hunter2"})
    again = client.post("/api/v1/signup", headers=key, json={
        "name": "Acme", "slug": slug, "admin_email": "a@acme.example", "admin_password": "hunter2hunter2"})
    assert first.status_code == again.status_code == 201
    assert again.data == first.data and again.headers["Idempotent-Replayed"] == "true"
    api_key = first.get_json()["api_key"]
    assert client.get("/api/v1/users", headers={"Authorization": f"Bearer {api_key}"}).status_code == 200
    with app.app_context():
        kept = db.session.execute(sa.select(SignupReplay.key, SignupReplay.request_hash, SignupReplay.response)).all()
    mine = [row for row in kept if row.key.startswith("sealed:") and f"signup-{slug}" not in row.key]
    assert mine and all(api_key.encode() not in bytes(row.response) and b"hunter2" not in bytes(row.response)
                        for row in kept)
    # the same key with another signup is refused, naming the header; without the key, the slug is taken
    other = client.post("/api/v1/signup", headers=key, json={
        "name": "Acme", "slug": unique("idem"), "admin_email": "a@acme.example", "admin_password": "hunter2hunter2"})
    assert other.status_code == 422 and list(other.get_json()["errors"]) == ["Idempotency-Key"]
    assert signup(client, slug=slug).status_code == 409
    # a day later the key is purged and free again
    with app.app_context():
        from datetime import timedelta

        from app.outbox.dispatch import purge_once

        db.session.execute(sa.update(SignupReplay).where(SignupReplay.key.in_([r.key for r in mine]))
                           .values(created_at=sa.func.now() - timedelta(hours=25)))
        db.session.commit()
        assert purge_once() >= 1
        assert db.session.execute(sa.select(SignupReplay).where(
            SignupReplay.key.in_([r.key for r in mine]))).first() is None


def test_a_replayed_signup_is_not_counted_against_the_address(client, app, monkeypatch):
    slug = unique("idem-rate")
    key = {"Idempotency-Key": f"signup-{slug}"}
    body = {"name": "Acme", "slug": slug, "admin_email": "a@acme.example", "admin_password": "hunter2hunter2"}
    assert client.post("/api/v1/signup", headers=key, json=body).status_code == 201
    monkeypatch.setitem(app.config, "SIGNUP_RATE_LIMIT_PER_HOUR", 0)
    assert client.post("/api/v1/signup", headers=key, json=body).status_code == 201
    assert signup(client, slug=unique("idem-rate")).status_code == 429


def test_the_same_signup_sent_twice_at_once_makes_one_organization_and_both_get_its_answer(app):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    slug = unique("idem-race")
    body = {"name": "Acme", "slug": slug, "admin_email": "a@acme.example", "admin_password": "hunter2hunter2"}
    start = threading.Barrier(2)

    def send(_: int):
        client = app.test_client()
        start.wait()
        return client.post("/api/v1/signup", headers={"Idempotency-Key": f"race-{slug}"}, json=body)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(send, range(2)))
    assert sorted(a.status_code for a in answers) == [201, 201], [a.get_json() for a in answers]
    assert answers[0].data == answers[1].data


def test_a_signup_key_cannot_be_used_to_guess_the_admins_password(client, app, monkeypatch):
    """The kept answer replays to the same body, password included; refusals count as signups, so
    guesses stop at the hourly limit, and another address's same key is another key altogether."""
    slug = unique("idem-guess")
    key = {"Idempotency-Key": f"signup-{slug}"}
    body = {"name": "Acme", "slug": slug, "admin_email": "a@acme.example", "admin_password": "the right one"}
    here = {"REMOTE_ADDR": f"198.51.100.{secrets.randbelow(250) + 1}"}  # an hourly count of its own
    assert client.post("/api/v1/signup", headers=key, json=body, environ_base=here).status_code == 201
    monkeypatch.setitem(app.config, "SIGNUP_RATE_LIMIT_PER_HOUR", 3)
    answers = [client.post("/api/v1/signup", headers=key, json={**body, "admin_password": f"password guess {i}"},
                           environ_base=here).status_code for i in range(6)]
    assert 422 in answers and answers[-1] == 429
    # from another address the key finds nothing of the first: it is a new signup, and the slug is taken
    elsewhere = client.post("/api/v1/signup", headers=key, json=body, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert elsewhere.status_code == 409 and "api_key" not in elsewhere.get_json()
