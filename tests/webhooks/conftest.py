"""Webhook test fixtures: a real HTTP receiver on loopback, and deliveries run in this process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from app.webhooks.delivery import deliver
from app.webhooks.models import WebhookDelivery
from tenants import active_tenant, tenant_context


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """An HTTP server that records every request; `answer(n)` says how to respond to the n-th (0-based)."""

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    answer: Callable[[int], tuple[int, dict[str, str], bytes]] = lambda n: (200, {}, b"ok")
    stall: Callable[[int, BaseHTTPRequestHandler], bool] = lambda n, handler: False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            me = holder["r"]
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            n = len(me.requests)
            me.requests.append(Received(self.path, dict(self.headers.items()), body, time.time()))
            if me.stall(n, self):
                return
            status, headers, answer = me.answer(n)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder["r"] = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder["r"]
    server.shutdown()
    server.server_close()


@pytest.fixture
def hooks(app, monkeypatch):
    """Let webhooks reach loopback receivers, retry at once, and give up after 3 attempts."""
    for name, value in {"WEBHOOK_ALLOW_PRIVATE_ADDRESSES": True, "WEBHOOK_RETRY_BASE_SECONDS": 0.01,
                        "WEBHOOK_RETRY_MAX_SECONDS": 0.05, "WEBHOOK_MAX_ATTEMPTS": 3,
                        "WEBHOOK_TOTAL_TIMEOUT": 3.0, "WEBHOOK_READ_TIMEOUT": 1.0,
                        "WEBHOOK_CONNECT_TIMEOUT": 1.0}.items():
        monkeypatch.setitem(app.config, name, value)
    return app


@pytest.fixture
def run_deliveries(app):
    """Return a function that makes every due attempt of a tenant's deliveries until none is left pending."""

    def run(tenant, timeout: float = 30) -> list[str]:
        outcomes = []
        deadline = time.monotonic() + timeout
        with app.app_context():
            from app.extensions import db

            ref = active_tenant(tenant.slug).ref()
            db.session.rollback()
            with tenant_context(ref):
                while time.monotonic() < deadline:
                    pending = db.session.execute(
                        sa.select(WebhookDelivery.id, WebhookDelivery.next_attempt_at)
                        .where(WebhookDelivery.state == "pending").order_by(WebhookDelivery.next_attempt_at)
                    ).all()
                    db.session.rollback()
                    if not pending:
                        return outcomes
                    for row in pending:
                        outcomes.append(deliver(row.id))
                    time.sleep(0.02)
        raise AssertionError(f"deliveries still pending after {timeout}s: {outcomes[-5:]}")

    return run
