"""A request that meets its tenant's schema gone answers in the error shape, never a bare crash.

Fenced for a move to another shard, that is 503 with Retry-After (moves themselves are tested in
`test_shards.py`), whether the key check or the view met it; when the lookup of a move fails
because the database stopped answering too, 503 as for any lost database; dropped, 404 as for any
request of a tenant that is no more; otherwise a logged 500.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
import sqlalchemy as sa

import tenants
from app.auth import keys
from app.auth.key_cache import key_cache
from app.auth.keys import key_digest
from app.extensions import db
from tenants import schema_for, tenant_moved
from tenants.names import moved_schema


@pytest.fixture
def rename_schema(services, tenant) -> Callable[[str], None]:
    """Return a function that renames the tenant's schema (back again after the test)."""
    url = services.database_url.replace("postgresql+psycopg://", "postgresql://")
    names = [schema_for(tenant.slug)]

    def rename(name: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'alter schema "{names[-1]}" rename to "{name}"')
        names.append(name)

    yield rename
    if len(names) > 1:
        rename(names[0])


def _cache_key(app, tenant) -> None:
    """Make requests until this process has the tenant's key cached (the first may only note its generation)."""
    for _ in range(2):
        assert tenant.api.get("/api/v1/tickets").status_code == 200
    with app.app_context():
        assert key_cache().get(key_digest(tenant.key)) is not None


def _tenant_id(app, slug: str) -> str:
    with app.app_context():
        found = db.session.execute(sa.text("select id from public.tenants where slug = :s"), {"s": slug}).scalar()
        db.session.rollback()
    return str(found)


def test_a_schema_gone_for_no_move_is_a_500_in_the_error_shape(tenant, rename_schema):
    rename_schema(schema_for(tenant.slug) + "_away")
    answer = tenant.api.get("/api/v1/tickets")
    assert answer.status_code == 500 and answer.get_json()["code"] == 500


@pytest.mark.parametrize("key_cached", [True, False], ids=["in the view", "in the key check"])
def test_a_schema_fenced_for_a_move_is_a_503_to_retry(app, tenant, rename_schema, monkeypatch, key_cached):
    tenant_id = _tenant_id(app, tenant.slug)
    _cache_key(app, tenant)
    if not key_cached:
        with app.app_context():
            key_cache().clear({tenant_id})
    rename_schema(moved_schema(tenant_id))
    held_while_asking = []

    def noted(ref):  # the key check asks with its own connection given back (a busy pool is not drained)
        held_while_asking.append(db.engine.pool.checkedout())
        return tenant_moved(ref)

    monkeypatch.setattr(keys, "tenant_moved", noted)
    answer = tenant.api.get("/api/v1/tickets")
    assert answer.status_code == 503 and answer.get_json()["code"] == 503 and "Retry-After" in answer.headers
    assert "being moved" in answer.get_json()["message"]
    assert held_while_asking == ([] if key_cached else [0])


@pytest.mark.parametrize("failure", [
    sa.exc.OperationalError("select 1", {}, Exception("server closed the connection unexpectedly")),
    sa.exc.TimeoutError("QueuePool limit reached, connection timed out"),
], ids=["database lost", "pool busy"])
def test_a_schema_gone_while_the_database_cannot_answer_is_a_503(app, tenant, rename_schema, monkeypatch, failure):
    def lost(_tenant):
        raise failure

    _cache_key(app, tenant)
    rename_schema(schema_for(tenant.slug) + "_away")
    monkeypatch.setattr(tenants, "tenant_moved", lost)
    monkeypatch.setattr(keys, "tenant_moved", lost)  # should the key drop out of the cache meanwhile
    answer = tenant.api.get("/api/v1/tickets")
    assert answer.status_code == 503 and answer.get_json()["code"] == 503 and "Retry-After" in answer.headers


def test_a_request_that_meets_its_tenants_drop_answers_404(app, tenant, monkeypatch):
    """Its statements missed the dropped schema, which read as a bug: a 500."""
    import threading

    from app.tickets import writes

    real = writes.new_ticket_values

    def dropped_meanwhile(*args, **kwargs):
        found = real(*args, **kwargs)
        dropper = threading.Thread(target=lambda: app.test_cli_runner().invoke(
            args=["tenants", "drop", tenant.slug, "--yes"]))
        dropper.start()
        dropper.join(30)
        return found

    monkeypatch.setattr(writes, "new_ticket_values", dropped_meanwhile)
    answer = tenant.api.post("/api/v1/tickets", json={"title": "too late"})
    assert answer.status_code == 404 and answer.get_json() == {"code": 404, "status": "Not Found",
                                                               "message": "No such organization."}


def test_a_deadlock_postgres_broke_is_told_as_a_concurrent_change_not_a_database_down(app, tenant, monkeypatch):
    """Every deadlock answered "The database is unavailable", which sent people looking at a database that
    was fine. It is a 503 still (try again), worded for what happened."""
    from psycopg.errors import DeadlockDetected

    from app.tickets import services

    def deadlocked(*args, **kwargs):
        raise sa.exc.OperationalError("UPDATE tickets", {}, DeadlockDetected("deadlock detected"))

    ticket = tenant.api.post("/api/v1/tickets", json={"title": "Help"}).get_json()
    monkeypatch.setattr(services, "update_ticket", deadlocked)
    answer = tenant.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"priority": "high"})
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert answer.get_json()["message"] == "The request met another change made at the same moment; try again."
