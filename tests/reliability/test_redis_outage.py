"""Redis stops while tickets and messages are written: every 2xx is durable, and assignment, webhooks
and open sockets catch up from Postgres and the outbox once Redis is back."""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis
import sqlalchemy as sa
from rq import Queue

from app import create_app
from app.embedded import EmbeddedRedis, stop_process
from app.extensions import db
from app.outbox.dispatch import relay_tenant
from app.webhooks.delivery import relay_tenant as relay_deliveries
from tenants import active_tenant, tenant_context
from tests.helpers import ApiClient, Desk, TenantHandle, app_config, next_event, wait_until
from tests.servers import start_gunicorn, start_worker, stop_gunicorn

PRIVATE = {"WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "1", "OUTBOX_REDELIVER_AFTER": "1"}


def test_writes_during_a_redis_outage_are_kept_and_everything_catches_up(app, services, receiver):
    del app  # (the session's app has brought the public schema to head)
    folder = Path(tempfile.mkdtemp(prefix="tms-redis-outage-"))
    redis_server = EmbeddedRedis(folder / "redis").start()
    app = create_app(app_config(services, REDIS_URL=redis_server.url, WEBHOOK_ALLOW_PRIVATE_ADDRESSES=True,
                                OUTBOX_REDELIVER_AFTER=1))
    client = app.test_client()
    slug = f"outage-{uuid.uuid4().hex[:8]}"
    body = client.post("/api/v1/signup", json={"name": "Outage", "slug": slug, "admin_email": f"a@{slug}.com",
                                               "admin_password": "correct horse battery"}).get_json()
    api = ApiClient(client, body["api_key"])
    desk = Desk(TenantHandle(slug=slug, key=body["api_key"], admin_id=body["admin_id"], admin_email="",
                             admin_password="", api=api))
    agents = desk.agents(2)
    desk.rule(desk.team("Support", agents), "round_robin")
    assert api.post("/api/v1/webhooks", json={"url": receiver.url,
                                              "events": ["ticket.created", "message.created"]}).status_code == 201
    server = start_gunicorn(services, REDIS_URL=redis_server.url, **PRIVATE)
    worker = start_worker(services.database_url, redis_server.url, folder, "worker", queues="assignment,webhooks",
                          **PRIVATE)
    try:
        wait_until(lambda: _worker_listening(redis_server.url), "the worker to listen", timeout=60)
        watched = desk.ticket("watched while Redis is away")
        ws = server_socket(server, watched["id"], body["api_key"])
        seen = Listening(ws, server, watched["id"], body["api_key"])  # answers the server's pings all along
        redis_server.stop()

        for i in range(100):
            desk.ticket(f"during {i}")  # each a 201, or desk.ticket fails
        for i in range(100):
            assert api.post(f"/api/v1/tickets/{watched['id']}/messages", json={"body": f"m{i}"}).status_code == 201

        redis_server = EmbeddedRedis(folder / "redis", port=redis_server.port).start()

        def caught_up() -> bool:
            with app.app_context():  # the relay's sweep, for this tenant only (others' rows are not ours)
                ref = active_tenant(slug).ref()
                db.session.rollback()
                with tenant_context(ref):
                    relay_tenant(slug)
                    relay_deliveries(slug, 1)
            tickets = api.get("/api/v1/tickets?limit=200").get_json()["items"]
            delivered = [json.loads(r.body)["type"] for r in receiver.requests]
            progress.append((len(tickets), sum(1 for t in tickets if t["assignee_id"]),
                             delivered.count("ticket.created"), delivered.count("message.created")))
            return (len(tickets) == 101 and all(t["assignee_id"] for t in tickets)
                    and delivered.count("ticket.created") >= 101 and delivered.count("message.created") >= 100)

        progress: list[tuple] = []  # (tickets, assigned, ticket.created delivered, message.created delivered)
        try:
            wait_until(caught_up, "assignment and webhooks to catch up", timeout=180, every=1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; (tickets, assigned, ticket.created and message.created delivered), "
                                 f"last: {progress[-3:]}; see {folder}") from None
        wait_until(lambda: len(seen.bodies) >= 100, "the open socket to catch up", timeout=60)
        seen.stop()
        assert seen.bodies == [f"m{i}" for i in range(100)]  # caught up by seq, in order, once each
        with app.app_context():
            assert db.session.execute(sa.text(
                f'select count(*) from "tenant_{slug.replace("-", "_")}".outbox where processed_at is null'
            )).scalar() == 0
            db.session.rollback()
    finally:
        stop_process(worker, signal.SIGTERM, 10)
        stop_gunicorn(server)
        redis_server.stop()
    shutil.rmtree(folder, ignore_errors=True)  # kept when the test fails, for the worker's log


class Listening:
    """Read a socket's message events on a thread of its own until stopped, reconnecting from the
    last seq seen when the server drops the socket, as a client following the contract does."""

    def __init__(self, ws, server, ticket_id: str, key: str) -> None:
        self.ws, self.server, self.ticket_id, self.key = ws, server, ticket_id, key
        self.bodies: list[str] = []
        self.last_seq = 0
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        import websocket

        while self.running:
            try:
                message = next_event(self.ws, "message.created", timeout=1)["message"]
            except TimeoutError:
                continue
            except (ConnectionError, OSError, websocket.WebSocketException):
                self.ws.close()
                try:
                    self.ws = server_socket(self.server, self.ticket_id, self.key, after_seq=self.last_seq)
                except (OSError, websocket.WebSocketException):
                    time.sleep(0.5)
                continue
            self.last_seq = max(self.last_seq, message["seq"])
            self.bodies.append(message["body"])  # a repeat would show as an extra body

    def stop(self) -> None:
        self.running = False
        self.thread.join(5)
        self.ws.close()


def server_socket(server, ticket_id: str, key: str, after_seq: int = 0):
    import websocket

    return websocket.create_connection(
        f"ws://127.0.0.1:{server.port}/api/v1/tickets/{ticket_id}/stream?after_seq={after_seq}",
                                       header=[f"Authorization: Bearer {key}"], timeout=10)


def _worker_listening(redis_url: str) -> bool:
    import redis
    from rq import Worker

    return bool(Worker.all(connection=redis.Redis.from_url(redis_url)))


def test_a_worker_that_meets_redis_gone_as_it_finishes_a_job_works_on_once_redis_is_back(services):
    """RQ quits its loop, without raising, when Redis goes away while it finishes a job; the worker starts again."""
    folder = Path(tempfile.mkdtemp(prefix="tms-redis-outage-"))
    redis_server = EmbeddedRedis(folder / "redis").start()
    worker = start_worker(services.database_url, redis_server.url, folder, "worker")
    try:
        Queue("assignment", connection=redis.Redis.from_url(redis_server.url)).enqueue(
            "tests.reliability.jobs.shut_redis_down")
        wait_until(lambda: "found an unhandled exception" in (folder / "worker.log").read_text(),
                   "the worker to meet Redis gone", timeout=60)
        redis_server.stop()
        redis_server = EmbeddedRedis(folder / "redis", port=redis_server.port).start()
        _runs_a_job(redis_server, worker, folder)
    finally:
        stop_process(worker, signal.SIGTERM, 10)
        redis_server.stop()
    shutil.rmtree(folder, ignore_errors=True)  # kept when the test fails, for the worker's log


def test_a_worker_started_while_redis_is_away_waits_for_it(services):
    """RQ names its Redis connection as it makes a worker: with Redis away that raised outside the
    command's retry, and the worker process exited for good (its restart after an outage too)."""
    folder = Path(tempfile.mkdtemp(prefix="tms-redis-outage-"))
    redis_server = EmbeddedRedis(folder / "redis").start()
    redis_server.stop()
    worker = start_worker(services.database_url, redis_server.url, folder, "worker")
    try:
        wait_until(lambda: (folder / "worker.log").read_text().count("Redis unavailable") >= 2,
                   "the worker to try twice", timeout=60)
        assert worker.poll() is None
        redis_server = EmbeddedRedis(folder / "redis", port=redis_server.port).start()
        _runs_a_job(redis_server, worker, folder)
    finally:
        stop_process(worker, signal.SIGTERM, 10)
        redis_server.stop()
    shutil.rmtree(folder, ignore_errors=True)  # kept when the test fails, for the worker's log


def _runs_a_job(redis_server: EmbeddedRedis, worker, folder: Path) -> None:
    """See the worker run a job from this Redis (back after an outage) and stay up."""
    mark = folder / "ran"
    Queue("assignment", connection=redis.Redis.from_url(redis_server.url)).enqueue(
        "tests.reliability.jobs.touch", str(mark))
    wait_until(mark.exists, "a job once Redis is back", timeout=60)
    assert worker.poll() is None
