"""Fixtures: real PostgreSQL and Redis (embedded unless TEST_DATABASE_URL/TEST_REDIS_URL), the app,
and factories for tenants and API clients. Each test makes its own tenants, so tests never share
data and need no cleanup."""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis as redis_lib

from app import create_app
from app.embedded import start_missing
from app.extensions import db
from tenants.migrations import upgrade_public

# S3, clamd, the app in gunicorn and Chromium, each started only for the tests that ask for it.
pytest_plugins = ["tests.servers"]


@dataclass
class Services:
    database_url: str
    redis_url: str


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    root = Path(tempfile.mkdtemp(prefix="tms-test-"))
    database_url, redis_url, started = start_missing(
        root, os.environ.get("TEST_DATABASE_URL"), os.environ.get("TEST_REDIS_URL"), durable=False)
    redis_lib.Redis.from_url(redis_url).flushdb()
    yield Services(database_url, redis_url)
    for server in reversed(started):
        server.stop()


def app_config(services: Services, **overrides: object) -> dict:
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": services.database_url,
        "REDIS_URL": services.redis_url,
        "PASSWORD_HASH_FAST": True,
        "WTF_CSRF_ENABLED": False,
        "SECRET_KEY": "test-secret",
        "RATE_LIMIT_PER_MINUTE": 100000,
        **overrides,
    }


@pytest.fixture(scope="session")
def app(services: Services):
    app = create_app(app_config(services))
    with app.app_context():
        upgrade_public(db.engine)
    return app


@pytest.fixture
def client(app):
    return app.test_client()


class ApiClient:
    """A test client that sends an API key and JSON."""

    def __init__(self, client, key: str | None) -> None:
        self.client = client
        self.key = key

    def _headers(self, headers: dict | None) -> dict:
        base = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return {**base, **(headers or {})}

    def get(self, path: str, **kw):
        return self.client.get(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def delete(self, path: str, **kw):
        return self.client.delete(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def post(self, path: str, json=None, **kw):
        return self.client.post(path, json=json, headers=self._headers(kw.pop("headers", None)), **kw)

    def put(self, path: str, json=None, **kw):
        return self.client.put(path, json=json, headers=self._headers(kw.pop("headers", None)), **kw)

    def patch(self, path: str, json=None, **kw):
        return self.client.patch(path, json=json, headers=self._headers(kw.pop("headers", None)), **kw)


@dataclass
class TenantHandle:
    slug: str
    key: str
    admin_id: str
    admin_email: str
    admin_password: str
    api: ApiClient

    def user(self, role: str = "agent", **fields: object) -> dict:
        """Create a user through the API and return its JSON."""
        body = {"email": f"{role}-{uuid.uuid4().hex[:8]}@example.com", "name": f"{role} user",
                "role": role, "password": "password123", **fields}
        resp = self.api.post("/api/v1/users", json=body)
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()

    def key_for(self, user: dict, role: str | None = None) -> ApiClient:
        """Return an API client acting as `user` with `role` (default: the user's role)."""
        resp = self.api.post("/api/v1/api-keys", json={"name": "test", "role": role or user["role"],
                                                         "user_id": user["id"]})
        assert resp.status_code == 201, resp.get_json()
        return ApiClient(self.api.client, resp.get_json()["key"])


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
