"""Helpers that tests import: API clients, tenant handles, factories and waits.

A library, not a test module: fixtures that use these live in conftest.py files.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import pytest
import sqlalchemy as sa
import websocket


@dataclass
class Services:
    database_url: str
    redis_url: str
    media_dir: str = ""  # the local media folder of this test session (MEDIA_LOCAL_DIR)


def app_config(services: Services, **overrides: object) -> dict:
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": services.database_url,
        "REDIS_URL": services.redis_url,
        "PASSWORD_HASH_FAST": True,
        "WTF_CSRF_ENABLED": False,
        "SECRET_KEY": "test-secret",
        "RATE_LIMIT_PER_MINUTE": 100000,
        "RATE_LIMIT_PER_TENANT_PER_MINUTE": 1000000,
        "SIGNUP_RATE_LIMIT_PER_HOUR": 100000,
        "KEY_FAILURES_PER_ADDRESS_PER_MINUTE": 100000,
        "DASHBOARD_CACHE_SECONDS": 0,
        "POOL_CHECKOUT_GUARD": True,
        **({"MEDIA_LOCAL_DIR": services.media_dir} if services.media_dir else {}),
        **overrides,
    }


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


class Desk:
    """Build teams of agents, rules and tickets in a tenant through the API."""

    def __init__(self, tenant) -> None:
        self.t = tenant

    def team(self, name: str, members: list[dict]) -> dict:
        resp = self.t.api.post("/api/v1/teams", json={"name": name})
        assert resp.status_code == 201, resp.get_json()
        team = resp.get_json()
        for m in members:
            assert self.t.api.put(f"/api/v1/teams/{team['id']}/members/{m['id']}").status_code == 200
        return team

    def agents(self, n: int, **fields) -> list[dict]:
        return [self.t.user("agent", name=f"agent {i}", **fields) for i in range(n)]

    def rule(self, team: dict, strategy: str = "least_loaded", **fields) -> dict:
        body = {"name": f"{strategy} rule", "position": 0, "team_id": team["id"], "strategy": strategy, **fields}
        resp = self.t.api.post("/api/v1/assignment-rules", json=body)
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()

    def ticket(self, title: str = "Help", **fields) -> dict:
        resp = self.t.api.post("/api/v1/tickets", json={"title": title, **fields})
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()

    def get(self, ticket: dict) -> dict:
        return self.t.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()

    def assignment(self, ticket: dict) -> dict:
        resp = self.t.api.get(f"/api/v1/tickets/{ticket['id']}/assignment")
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()


def new_ticket(api: ApiClient, title: str = "Help", **fields: object) -> dict:
    """Open a ticket through the API and return its JSON."""
    resp = api.post("/api/v1/tickets", json={"title": title, **fields})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def post_message(api: ApiClient, ticket_id: str, **body: object):
    """Post a message (body "hello" unless given) and return the response."""
    return api.post(f"/api/v1/tickets/{ticket_id}/messages", json={"body": "hello", **body})


def upload_file(api: ApiClient, ticket_id: str, data: bytes, filename: str = "file.bin",
                content_type: str | None = None, headers: dict | None = None):
    """Upload `data` to a ticket as the `file` part of a multipart body; return the response."""
    part = (io.BytesIO(data), filename, content_type) if content_type else (io.BytesIO(data), filename)
    return api.client.post(f"/api/v1/tickets/{ticket_id}/attachments", data={"file": part},
                           headers=api._headers(headers), content_type="multipart/form-data")


def get_attachment(api: ApiClient, attachment_id: str) -> dict:
    """Return an attachment's JSON (asserting it is visible to `api`)."""
    resp = api.get(f"/api/v1/attachments/{attachment_id}")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def wait_until(check: Callable[[], bool], what: str, timeout: float = 90, every: float = 0.1) -> None:
    """Poll `check` until it is true; fail with `what` if it never is (a hang guard, not a timing test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"gave up waiting: {what}")


def next_event(ws: websocket.WebSocket, kind: str | None = None, timeout: float = 5.0) -> dict:
    """Return the next event (of `kind`, skipping others), waiting at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {kind or 'event'} within {timeout}s")
        ws.settimeout(left)
        # Control frames come back too (pings are answered on the way), so steady pings cannot
        # keep this waiting past the deadline.
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise ConnectionError("the server closed the socket")
        if opcode != websocket.ABNF.OPCODE_TEXT:
            continue
        event = json.loads(data)
        if kind is None or event["type"] == kind:
            return event


def send(ws: websocket.WebSocket, **frame: object) -> None:
    """Send one JSON frame on a socket."""
    ws.send(json.dumps(frame))


def message_events(ws: websocket.WebSocket, count: int) -> list[dict]:
    """Return the messages of the next `count` message.created events."""
    return [next_event(ws, "message.created")["message"] for _ in range(count)]


def refused_status(server, ticket_id: str, **kw: object) -> int:
    """Return the HTTP status that refuses a socket before the handshake."""
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        server.connect(ticket_id, **kw)
    return refused.value.status_code


def close_code(ws, timeout: float = 10) -> int:
    """Read until the server's close frame (live events may come first) and return its code."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ws.settimeout(max(deadline - time.monotonic(), 0.01))
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(data[:2], "big")
    raise TimeoutError(f"the server did not close the socket within {timeout}s")


# --- webhooks ------------------------------------------------------------------------------


def verify(secret: str, headers: dict[str, str], body: bytes, now: float | None = None,
           tolerance: int = 300) -> bool:
    """Verify a delivery as docs/api.md tells receivers to: fresh timestamp, any matching signature."""
    stamp = headers["X-Webhook-Timestamp"]
    if abs((now or time.time()) - int(stamp)) > tolerance:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s.strip()) for s in headers["X-Signature"].split(","))


def subscribe_webhook(tenant, url: str, events: list[str] | None = None, **fields) -> dict:
    resp = tenant.api.post("/api/v1/webhooks", json={"url": url, "events": events or ["ticket.created"], **fields})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def webhook_attempts(tenant, webhook: dict, **query) -> list[dict]:
    resp = tenant.api.get(f"/api/v1/webhooks/{webhook['id']}/deliveries", query_string={"limit": 200, **query})
    assert resp.status_code == 200, resp.get_json()
    return list(reversed(resp.get_json()["items"]))  # oldest first


@contextmanager
def tenant_schema_at(app, revision: str) -> Iterator[tuple[object, str]]:
    """Yield (engine, schema) of a fresh tenant schema built up to `revision`, for a migration's test; then drop it."""
    from app.extensions import db
    from tenants.migrations import tenant_ddl

    schema = f"tenant_mig{secrets.token_hex(4)}"
    with app.app_context():
        engine = db.engine
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        try:
            with in_schema(engine, schema) as conn:
                conn.exec_driver_sql(tenant_ddl(revision))
            yield engine, schema
        finally:
            with engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def in_schema(engine, schema: str) -> Iterator[object]:
    """Yield a connection in a transaction whose unqualified names are `schema`'s."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f'SET LOCAL search_path TO "{schema}"')
        yield conn


def record_statements(monkeypatch) -> list[tuple[str, list]]:
    """Return the list each prebuilt tenant statement run from now on is added to, as (SQL, `$n` values)."""
    from tenants import TenantStatement

    ran: list[tuple[str, list]] = []
    real = TenantStatement.execute

    def seen(self, cursor, params, **options):
        ran.append((self.sql(), self.positional(params)))
        return real(self, cursor, params, **options)

    monkeypatch.setattr(TenantStatement, "execute", seen)
    return ran


def index_plan(session, sql: str, params: dict | list) -> str:
    """Return Postgres's plan of `sql` in `session`'s transaction, asking for its index plan: tiny test
    tables would be read whole. `params` is a dict for `%(name)s` text, a list for a prebuilt statement's `$n`."""
    for planner_setting in ("enable_seqscan", "enable_bitmapscan"):
        session.execute(sa.text(f"SET LOCAL {planner_setting} = off"))
    if isinstance(params, list):
        with psycopg.RawCursor(session.connection().connection.dbapi_connection) as cursor:
            return "\n".join(row[0] for row in cursor.execute(f"EXPLAIN {sql}", params))
    return "\n".join(session.connection().exec_driver_sql(f"EXPLAIN {sql}", params).scalars())


def list_plan(tenant, in_tenant, monkeypatch, path: str) -> str:
    """Return Postgres's index plan of the statement the API's `GET path` (a plain ticket page) ran."""
    with monkeypatch.context() as patched:
        ran = record_statements(patched)
        assert tenant.api.get(path).status_code == 200
    with in_tenant(tenant) as session:
        return index_plan(session, *ran[-1])


# --- Raw HTTP, for what a client library would refuse to send ---------------------------------

RAW_HOST = b"Host: 127.0.0.1\r\n"


def read_until_closed(sock: socket.socket) -> bytes:
    """Return everything the server sends on `sock` until it closes the connection."""
    return b"".join(iter(lambda: sock.recv(65536), b""))


def raw_exchange(port: int, raw: bytes) -> bytes:
    """Send `raw` bytes to the server on loopback `port` and return all it answers, until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        return read_until_closed(sock)


def parse_raw_response(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    """Return the status, the headers (names in lower case) and the body of one raw HTTP answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body
