"""Invariant 1: every query of tenant data runs against that tenant's schema and no other."""

import re
import threading
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from app import create_app
from app.extensions import db
from app.people.models import User
from tenants.context import TenantRef, tenant_context
from tests.helpers import ApiClient, app_config

SCHEMA = re.compile(r'"?(tenant_[a-z0-9_]+)"?\.')


def test_one_pooled_connection_alternating_tenants_never_crosses(services, make_tenant):
    """Hammer a single pooled connection from several threads with requests of two tenants."""
    a, b = make_tenant(), make_tenant()
    app = create_app(app_config(services, SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 1, "max_overflow": 0}))
    expected = {a.key: f"tenant_{a.slug}", b.key: f"tenant_{b.slug}"}
    wrong: list[str] = []
    connections: set[int] = set()

    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "before_cursor_execute")
    def check(conn, cursor, statement, parameters, context, executemany):
        connections.add(id(conn.connection.dbapi_connection))
        key = getattr(threading.current_thread(), "tenant_key", None)
        schemas = set(SCHEMA.findall(statement))
        if key and schemas - {expected[key]}:
            wrong.append(f"{expected[key]} ran {statement[:120]}")

    created = {a.key: set(), b.key: set()}

    def hammer(key: str, rounds: int) -> None:
        threading.current_thread().tenant_key = key
        api = ApiClient(app.test_client(), key)
        for i in range(rounds):
            email = f"u{uuid.uuid4().hex[:10]}@example.com"
            resp = api.post("/api/v1/users", json={"email": email, "name": f"n{i}", "role": "requester"})
            assert resp.status_code == 201
            created[key].add(resp.get_json()["id"])
            listed = api.get("/api/v1/users?limit=200").get_json()["items"]
            assert {u["id"] for u in listed} - created[key] - {admin_of[key]} == set()
            ticket = api.post("/api/v1/tickets", json={"title": f"t{i}"})
            assert ticket.status_code == 201
            assert api.get(f"/api/v1/tickets/{ticket.get_json()['id']}").status_code == 200

    admin_of = {a.key: a.admin_id, b.key: b.admin_id}
    threads = [threading.Thread(target=hammer, args=(key, 15)) for key in (a.key, b.key, a.key, b.key)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    event.remove(engine, "before_cursor_execute", check)

    assert wrong == []
    assert len(connections) == 1, "the test must exercise one pooled connection"
    with app.app_context():
        with engine.connect() as conn:
            assert conn.execute(sa.text("show search_path")).scalar() == '"$user", public'
        for handle, key in ((a, a.key), (b, b.key)):
            ids = {str(i) for i in db.session.execute(
                sa.text(f'select id from "tenant_{handle.slug}".users')).scalars()}
            assert ids == created[key] | {handle.admin_id}
            numbers = list(db.session.execute(
                sa.text(f'select number from "tenant_{handle.slug}".tickets order by number')).scalars())
            assert numbers == list(range(1, 31))


def test_no_tenant_in_context_fails_closed(app):
    with app.app_context():
        with pytest.raises(sa.exc.ProgrammingError, match=r'relation "tenant\.users" does not exist'):
            db.session.execute(sa.select(User)).all()
        db.session.rollback()


def test_switching_tenant_with_pending_changes_is_refused(app, make_tenant):
    a, b = make_tenant(), make_tenant()
    ref_a = TenantRef(id=str(uuid.uuid4()), slug=a.slug, schema=f"tenant_{a.slug}")
    ref_b = TenantRef(id=str(uuid.uuid4()), slug=b.slug, schema=f"tenant_{b.slug}")
    with app.app_context(), tenant_context(ref_a):
        db.session.add(User(email="x@example.com", name="x", role="agent"))
        with pytest.raises(RuntimeError, match="before switching tenant"), tenant_context(ref_b):
            pass
        db.session.rollback()


def test_tenant_context_restores_the_previous_tenant(app, make_tenant):
    a, b = make_tenant(), make_tenant()
    ref_a = TenantRef(id=str(uuid.uuid4()), slug=a.slug, schema=f"tenant_{a.slug}")
    ref_b = TenantRef(id=str(uuid.uuid4()), slug=b.slug, schema=f"tenant_{b.slug}")
    emails = lambda: {u.email for u in db.session.execute(sa.select(User)).scalars()}  # noqa: E731
    with app.app_context(), tenant_context(ref_a):
        in_a = emails()
        with tenant_context(ref_b):
            assert emails() == {b.admin_email}
        assert emails() == in_a == {a.admin_email}


def test_two_tenants_interleaving_on_one_pooled_connection_never_see_each_others_rows(services, make_tenant):
    """The one-statement create and the prebuilt reads, hammered by two tenants through a single
    pooled connection (checked for leftover state on every checkout): each sees only its own tickets."""
    a, b = make_tenant(), make_tenant()
    app = create_app(app_config(services, SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 1, "max_overflow": 0}))
    created: dict[str, set[str]] = {a.key: set(), b.key: set()}
    seen_wrong: list[str] = []
    errors: list[BaseException] = []

    def hammer(key: str, rounds: int) -> None:
        try:
            rounds_of(key, rounds)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    def rounds_of(key: str, rounds: int) -> None:
        api = ApiClient(app.test_client(), key)
        for i in range(rounds):
            resp = api.post("/api/v1/tickets", json={"title": f"t{i}"}, headers={"Idempotency-Key": uuid.uuid4().hex})
            assert resp.status_code == 201
            ticket = resp.get_json()
            created[key].add(ticket["id"])
            listed = {t["id"] for t in api.get("/api/v1/tickets?limit=200").get_json()["items"]}
            other = b.key if key == a.key else a.key
            seen_wrong.extend(listed & created[other])
            assert api.get(f"/api/v1/tickets/{ticket['id']}").status_code == 200
            assert api.get(f"/api/v1/tickets/by-number/{ticket['number']}").get_json()["id"] in created[key]
            for foreign in list(created[other])[:3]:
                assert api.get(f"/api/v1/tickets/{foreign}").status_code == 404

    threads = [threading.Thread(target=hammer, args=(key, 15)) for key in (a.key, b.key, a.key, b.key)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and seen_wrong == []
    with app.app_context():
        for handle in (a, b):
            ids = {str(i) for i in db.session.execute(sa.text(f'select id from "tenant_{handle.slug}".tickets'))
                   .scalars()}
            assert ids == created[handle.key]
        db.session.rollback()
