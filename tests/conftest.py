"""Fixtures: real PostgreSQL and Redis (embedded unless TEST_DATABASE_URL/TEST_REDIS_URL), the app,
and factories for tenants and API clients. Each test makes its own tenants, with unique slugs,
so tests never share data, need no cleanup, and can run again against the same servers.
Helpers that tests import live in tests/helpers.py; servers beyond Postgres and Redis in
tests/servers.py."""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from rq import SimpleWorker

from app import create_app
from app.embedded import start_missing
from app.extensions import db, redis_client
from app.outbox.dispatch import relay_once
from app.worker import use_app
from tenants import active_tenant, shadow_tenant_tables, tenant_context
from tenants.migrations import upgrade_public
from tests.helpers import ApiClient, Services, TenantHandle, app_config
from tests.tenant_statements import crossings_since_last_call, watch_every_engine

# S3, clamd, the app in gunicorn and Chromium, each started only for the tests that ask for it.
pytest_plugins = ["tests.servers"]

watch_every_engine()  # no statement may name two tenant schemas (tests/tenant_statements.py)

# Modules far longer than the rest, run first: xdist hands out whole modules, and the API fuzz (about
# 90 s), collected near the end, kept one worker busy long after the other had run out of work.
LONGEST_FIRST = ("tests/test_api_fuzz.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the longest modules to the front, keeping every other test in its order."""
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in LONGEST_FIRST)


@pytest.fixture(autouse=True)
def no_statement_spans_two_tenants():
    """Fail the test if any statement it caused named two tenant schemas."""
    yield
    found = crossings_since_last_call()
    assert found == [], "statements spanning tenant schemas:\n" + "\n".join(found)


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    root = Path(tempfile.mkdtemp(prefix="tms-test-"))
    database_url, redis_url, started = start_missing(
        root, os.environ.get("TEST_DATABASE_URL"), os.environ.get("TEST_REDIS_URL"), durable=False)
    yield Services(database_url, redis_url, str(root / "media"))
    for server in reversed(started):
        server.stop()
    # The embedded servers' data: hundreds of MB in files of thousands of tenant schemas, whose removal
    # kept this worker (and so the run) half a minute longer. It goes on in the background.
    subprocess.Popen(["rm", "-rf", str(root)], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def app(services: Services):
    app = create_app(app_config(services))
    with app.app_context():
        upgrade_public(db.engine)
        shadow_tenant_tables(db.engine)  # a query that misses the tenant schema fails loudly
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_tenant(app):
    """Return a factory that signs up a fresh tenant and gives back its handle."""

    def make(slug: str | None = None) -> TenantHandle:
        slug = slug or f"t{secrets.token_hex(5)}"
        client = app.test_client()
        email, password = f"admin@{slug}.example.com", "correct horse battery"
        resp = client.post("/api/v1/signup", json={"name": f"Org {slug}", "slug": slug,
                                                   "admin_email": email, "admin_password": password})
        assert resp.status_code == 201, resp.get_json()
        body = resp.get_json()
        return TenantHandle(slug=slug, key=body["api_key"], admin_id=body["admin_id"], admin_email=email,
                            admin_password=password, api=ApiClient(client, body["api_key"]))

    return make


@pytest.fixture
def tenant(make_tenant) -> TenantHandle:
    return make_tenant()


@pytest.fixture
def other_tenant(make_tenant) -> TenantHandle:
    return make_tenant()


@pytest.fixture
def in_tenant(app):
    """Return a context manager that yields a session scoped to a tenant (for direct DB work)."""

    @contextmanager
    def enter(tenant) -> Iterator:
        with app.app_context():
            ref = active_tenant(tenant.slug).ref()
            db.session.rollback()
            with tenant_context(ref):
                try:
                    yield db.session
                finally:
                    db.session.rollback()

    return enter


@pytest.fixture
def run_jobs(app):
    """Return a function that runs every queued job of `queues` (default: assignment) in this process.

    First it hands on what the relay would on a wake: rows and deliveries that one-statement
    writes (a new ticket or message) left for it, in every tenant. (Only this module's tenants'
    left the rest of the suite's rows to pile up, and a later module running a real worker and relay
    spent its tests' time waiting behind them.)
    """

    def run(*queues: str) -> None:
        use_app(app)
        with app.app_context():
            relay_once(fresh=True)
            connection = redis_client()
        SimpleWorker(list(queues or ["assignment"]), connection=connection).work(burst=True)

    return run
