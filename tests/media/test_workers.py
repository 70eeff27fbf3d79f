"""Scans in real `flask worker` processes on the media queue: the fast path, RQ's retries waiting for
clamd while it is down, a worker SIGKILLed mid-scan, and a file that kills every worker that scans it."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from app.audit import AuditEntry
from app.embedded import EmbeddedClamd, stop_process
from app.extensions import db, redis_client
from app.media.models import Attachment
from app.outbox.dispatch import relay_tenant
from app.outbox.models import OutboxRow
from app.queues import share_key
from tenants import active_tenant, tenant_context
from tests.helpers import get_attachment, new_ticket, wait_until
from tests.media import samples
from tests.media.conftest import SCAN_HANDLER
from tests.servers import start_worker


class HungScanner:
    """A loopback 'clamd' that accepts connections, reads nothing and never answers."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.accepted: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.getsockname()[1]

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                self.accepted.append(self.server.accept()[0])
            except TimeoutError:
                continue

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        for conn in self.accepted:
            conn.close()
        self.server.close()


@pytest.fixture
def hung_scanner() -> Iterator[HungScanner]:
    scanner = HungScanner()
    yield scanner
    scanner.close()


@pytest.fixture
def media_workers(services, tmp_path, clamd_socket):
    """Return `start(**env)`: a `flask worker --queues media` on the test database, Redis and media folder."""
    started = []

    def start(**env: str):
        settings = {"MEDIA_LOCAL_DIR": services.media_dir, "CLAMD_SOCKET": clamd_socket, **env}
        proc = start_worker(services.database_url, services.redis_url, tmp_path, f"media-{len(started)}",
                            queues="media", **settings)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop_process(proc, signal.SIGTERM, 10)


@pytest.fixture
def fast_path(app, media, monkeypatch):
    """Hand scans to RQ right after the upload commits, as in production."""
    monkeypatch.setitem(app.config, "OUTBOX_FAST_PATH", True)


def attempts(in_tenant, tenant, attachment_id: str) -> int:
    with in_tenant(tenant) as session:
        return session.get(Attachment, attachment_id).scan_attempts


def relay(app, tenant) -> None:
    with app.app_context(), tenant_context(active_tenant(tenant.slug).ref()):
        relay_tenant(tenant.slug)
        db.session.rollback()


def final(tenant, attachment_id: str) -> bool:
    return get_attachment(tenant.api, attachment_id)["status"] != "pending"


def test_a_worker_scans_an_upload_as_soon_as_it_is_committed(tenant, fast_path, upload, media_workers):
    media_workers()
    ticket = new_ticket(tenant.api)
    body = upload(tenant.api, ticket["id"], samples.png(), "a.png").get_json()
    wait_until(lambda: final(tenant, body["id"]), "the worker to scan the upload")
    assert get_attachment(tenant.api, body["id"])["status"] == "clean"


def scan_row(in_tenant, tenant) -> OutboxRow:
    with in_tenant(tenant) as session:
        row = session.execute(sa.select(OutboxRow).where(OutboxRow.handler == SCAN_HANDLER)).scalar_one()
        session.expunge(row)
        return row


def retry_scheduled(app, tenant, row_id: int) -> bool:
    with app.app_context():
        connection = redis_client()
        registry = ScheduledJobRegistry("media", connection=connection)
        jobs = Job.fetch_many(registry.get_job_ids(), connection=connection)
    return any(job is not None and job.args == (tenant.slug, row_id) for job in jobs)


def test_while_clamd_is_down_the_scan_waits_for_it_with_rq_retries_and_counts_no_try(
        app, tenant, fast_path, upload, media_workers, tmp_path_factory, in_tenant):
    clamd = EmbeddedClamd(tmp_path_factory.mktemp("clamd-down")).start()
    clamd.stop()
    media_workers(CLAMD_SOCKET=clamd.socket_path, MEDIA_SCAN_ATTEMPTS="1")
    ticket = new_ticket(tenant.api)
    body = upload(tenant.api, ticket["id"], samples.text(), "a.txt").get_json()
    wait_until(lambda: scan_row(in_tenant, tenant).last_error is not None, "the scan to meet the outage")
    row = scan_row(in_tenant, tenant)
    assert "not reachable" in row.last_error and row.processed_at is None
    assert row.enqueued_at > datetime.now(UTC)  # the relay leaves it to RQ's retry, instead of starting another
    wait_until(lambda: retry_scheduled(app, tenant, row.id), "RQ to schedule the retry")
    assert get_attachment(tenant.api, body["id"])["status"] == "pending"
    assert attempts(in_tenant, tenant, body["id"]) == 0  # even with MEDIA_SCAN_ATTEMPTS=1, nothing was decided
    clamd.start()
    try:
        wait_until(lambda: final(tenant, body["id"]), "the retried scan once clamd is back", timeout=60)
    finally:
        clamd.stop()
    assert get_attachment(tenant.api, body["id"])["status"] == "clean"
    assert attempts(in_tenant, tenant, body["id"]) == 0  # no try held against it: none failed for its sake


def test_scans_waiting_out_an_outage_keep_their_places_so_the_rest_wait_in_the_database(
        app, tenant, fast_path, upload, media_workers, tmp_path_factory, monkeypatch):
    """A job waiting for its retry is still its tenant's job in the queue. It gave its place back, and the
    relay handed on the tenant's next scans, which met the outage in turn: every scan waited in RQ's
    schedule, outside the share, to enter the queue at once when clamd came back."""
    monkeypatch.setitem(app.config, "TENANT_QUEUED_JOBS", 1)
    clamd = EmbeddedClamd(tmp_path_factory.mktemp("clamd-out")).start()
    clamd.stop()
    media_workers(CLAMD_SOCKET=clamd.socket_path, TENANT_QUEUED_JOBS="1")
    ticket = new_ticket(tenant.api)
    ids = [upload(tenant.api, ticket["id"], samples.text(), f"{n}.txt").get_json()["id"] for n in range(3)]
    with app.app_context():
        connection = redis_client()
        registry, share = ScheduledJobRegistry("media", connection=connection), share_key(tenant.slug, "media")
        wait_until(lambda: registry.count == 1, "the first scan to wait for its retry")
        for _ in range(10):  # the relay runs on, every 0.3 s
            relay(app, tenant)
            time.sleep(0.3)
        assert registry.count == 1 and connection.zcard(share) == 1
        assert connection.zscore(share, str(_scheduled_row(app, registry))) > time.time() + 300
    clamd.start()
    try:
        def all_scanned() -> bool:
            relay(app, tenant)
            return all(get_attachment(tenant.api, i)["status"] == "clean" for i in ids)

        wait_until(all_scanned, "every scan, one place at a time, once clamd is back", every=0.5, timeout=90)
    finally:
        clamd.stop()


def _scheduled_row(app, registry: ScheduledJobRegistry) -> int:
    [job] = Job.fetch_many(registry.get_job_ids(), connection=registry.connection)
    return job.args[-1]


def test_sigkill_mid_scan_still_ends_in_one_final_state(app, tenant, fast_path, upload, media_workers, hung_scanner,
                                                         in_tenant, monkeypatch):
    victim = media_workers(CLAMD_SOCKET="", CLAMD_HOST="127.0.0.1", CLAMD_PORT=str(hung_scanner.port),
                           CLAMD_TIMEOUT="600")
    ticket = new_ticket(tenant.api)
    body = upload(tenant.api, ticket["id"], samples.jpeg_with_gps_and_comment(), "home.jpg").get_json()
    wait_until(lambda: hung_scanner.accepted and attempts(in_tenant, tenant, body["id"]) == 1,
               "the worker to be mid-scan, waiting on the antivirus")
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    assert get_attachment(tenant.api, body["id"])["status"] == "pending"  # the killed scan decided nothing
    media_workers()
    monkeypatch.setitem(app.config, "OUTBOX_REDELIVER_AFTER", 1)

    def relayed_and_final() -> bool:
        relay(app, tenant)
        return final(tenant, body["id"])

    wait_until(relayed_and_final, "the relay to hand the killed scan to the new worker", every=0.5)
    found = get_attachment(tenant.api, body["id"])
    assert found["status"] == "clean" and found["thumbnail_url"]
    assert tenant.api.get(found["download_url"]).status_code == 200
    assert attempts(in_tenant, tenant, body["id"]) == 1  # the killed try; the one that reached a verdict is given back
    with in_tenant(tenant) as session:
        verdicts = session.execute(sa.select(AuditEntry.after).where(
            AuditEntry.entity_id == body["id"], AuditEntry.action == "scanned")).scalars().all()
    assert [v["status"] for v in verdicts] == ["clean"]


def test_a_file_that_kills_every_scan_stops_after_a_few_tries(app, tenant, fast_path, upload, media_workers,
                                                              hung_scanner, in_tenant, monkeypatch):
    monkeypatch.setitem(app.config, "OUTBOX_REDELIVER_AFTER", 1)
    ticket = new_ticket(tenant.api)
    body = upload(tenant.api, ticket["id"], samples.text(), "poison.txt").get_json()
    for attempt in (1, 2, 3):
        victim = media_workers(CLAMD_SOCKET="", CLAMD_HOST="127.0.0.1", CLAMD_PORT=str(hung_scanner.port),
                               CLAMD_TIMEOUT="600")

        def started(attempt: int = attempt) -> bool:
            relay(app, tenant)
            return attempts(in_tenant, tenant, body["id"]) == attempt

        wait_until(started, f"scan attempt {attempt} to start", every=0.5)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
    media_workers()

    def relayed_and_final() -> bool:
        relay(app, tenant)
        return final(tenant, body["id"])

    wait_until(relayed_and_final, "the fourth delivery to give up", every=0.5)
    found = get_attachment(tenant.api, body["id"])
    assert found["status"] == "scan_failed" and "did not finish after 3 tries" in found["status_reason"]
    assert tenant.api.get(found["download_url"]).status_code == 410
