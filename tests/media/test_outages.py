"""Storage outages: an upload the storage cannot take (S3 down, its bucket missing, a broken disk)
answers 503 with Retry-After and stores nothing, on the API and on every page that takes files; a
scan that cannot read or write the storage waits for it, counting no try, and never decides the file."""

from __future__ import annotations

import contextlib
import io
import socket
import tempfile
import uuid
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
import sqlalchemy as sa
from botocore.config import Config

from app.extensions import db
from app.media import services as media_services
from app.media.models import Attachment
from app.media.storage import LocalStorage, StorageError, object_key, storage
from tenants import active_tenant
from tests.helpers import get_attachment, new_ticket
from tests.media import samples
from tests.ui.conftest import make_help_desk


@pytest.fixture
def s3_client(s3_endpoint):
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test", config=Config(s3={"addressing_style": "path"}))


@pytest.fixture
def bucket(app, media, s3_endpoint, s3_client, monkeypatch) -> str:
    """Switch media to S3 (a fresh bucket on moto's server) for one test."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    name = f"media-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    monkeypatch.setitem(app.config, "MEDIA_BACKEND", "s3")
    monkeypatch.setitem(app.config, "MEDIA_S3_BUCKET", name)
    monkeypatch.setitem(app.config, "MEDIA_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setitem(app.config, "MEDIA_S3_REGION", "us-east-1")
    return name


def dead_endpoint() -> str:
    """Return the URL of a port nothing listens on: an S3 endpoint that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def broken_disk(app, media, tmp_path, monkeypatch) -> Path:
    """Point the local backend at a folder that cannot be made (a file stands in its way)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    monkeypatch.setitem(app.config, "MEDIA_LOCAL_DIR", str(blocker / "media"))
    return blocker


def objects(s3_client, name: str) -> list[str]:
    return [o["Key"] for o in s3_client.list_objects_v2(Bucket=name).get("Contents", [])]


def used_bytes(tenant) -> int:
    return tenant.api.get("/api/v1/media/types").get_json()["used_bytes"]


def attachment_count(in_tenant, tenant) -> int:
    with in_tenant(tenant) as session:
        return session.query(Attachment).count()


def assert_unavailable(resp) -> None:
    assert resp.status_code == 503, resp.data[:2000]
    assert int(resp.headers["Retry-After"]) > 0
    body = resp.get_json()
    assert body["code"] == 503 and body["status"] == "Service Unavailable"
    assert "could not be stored" in body["message"]


@pytest.mark.parametrize("outage", ["endpoint down", "bucket missing"])
def test_an_upload_s3_cannot_take_answers_503_and_stores_nothing(app, tenant, bucket, s3_client, upload,
                                                                 monkeypatch, in_tenant, outage):
    ticket = new_ticket(tenant.api)
    if outage == "endpoint down":
        monkeypatch.setitem(app.config, "MEDIA_S3_ENDPOINT_URL", dead_endpoint())
    else:
        monkeypatch.setitem(app.config, "MEDIA_S3_BUCKET", f"gone-{uuid.uuid4().hex[:12]}")
    assert_unavailable(upload(tenant.api, ticket["id"], samples.text(), "notes.txt"))
    assert attachment_count(in_tenant, tenant) == 0 and used_bytes(tenant) == 0
    assert objects(s3_client, bucket) == []
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_an_upload_a_broken_disk_cannot_take_answers_503(tenant, broken_disk, upload, in_tenant):
    ticket = new_ticket(tenant.api)
    assert_unavailable(upload(tenant.api, ticket["id"], samples.png(), "shot.png"))
    assert attachment_count(in_tenant, tenant) == 0 and used_bytes(tenant) == 0


@pytest.fixture
def desk(tenant, media):
    return make_help_desk(tenant)


def sign_in(app, person):
    client = app.test_client()
    assert client.post(f"/t/{person.tenant.slug}/login",
                       data={"email": person.email, "password": person.password}).status_code == 302
    return client


def test_every_page_that_takes_files_answers_503_when_the_storage_cannot_take_them(app, desk, broken_disk,
                                                                                   in_tenant):
    ticket = desk.ticket_for(desk.requester)
    client = sign_in(app, desk.requester)
    number = ticket["number"]
    script = client.post(f"/t/{desk.slug}/tickets/{number}/attachments", content_type="multipart/form-data",
                         data={"file": (io.BytesIO(samples.png()), "shot.png")},
                         headers={"Accept": "application/json"})
    assert_unavailable(script)
    reply = client.post(f"/t/{desk.slug}/tickets/{number}/messages", content_type="multipart/form-data",
                        data={"body": "see the file", "file": (io.BytesIO(samples.png()), "shot.png")})
    assert reply.status_code == 503 and b"could not be stored" in reply.data
    assert int(reply.headers["Retry-After"]) > 0  # pages carry the error's headers too
    assert b"see the file" in reply.data  # the page keeps what was typed, to send again
    opened = client.post(f"/t/{desk.slug}/tickets/new", content_type="multipart/form-data", data={
        "title": "Printer on fire", "file": (io.BytesIO(samples.png()), "shot.png")})
    assert opened.status_code == 503 and b"could not be stored" in opened.data
    assert int(opened.headers["Retry-After"]) > 0
    assert [t["title"] for t in desk.tenant.api.get("/api/v1/tickets").get_json()["items"]] == [ticket["title"]]
    assert desk.tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"] == []
    assert attachment_count(in_tenant, desk.tenant) == 0 and used_bytes(desk.tenant) == 0


def test_a_refused_form_stays_refused_when_its_stored_files_cannot_be_deleted(app, desk, monkeypatch):
    """The second file is over the limit; deleting the first fails too (the storage went away between)."""
    assert desk.tenant.api.patch("/api/v1/media/settings", json={"max_size": 1000}).status_code == 200
    ticket = desk.ticket_for(desk.requester)
    client = sign_in(app, desk.requester)

    def storage_gone(self, keys):
        raise StorageError("the media folder could not be written: [Errno 5] Input/output error")

    monkeypatch.setattr(LocalStorage, "delete", storage_gone)
    refused = client.post(f"/t/{desk.slug}/tickets/{ticket['number']}/messages", content_type="multipart/form-data",
                          data={"body": "two files", "file": [(io.BytesIO(samples.png()), "small.png"),
                                                              (io.BytesIO(samples.text(200)), "big.txt")]})
    assert refused.status_code == 413 and b"larger than the limit of 1000 bytes" in refused.data


def test_a_scan_that_cannot_read_s3_waits_for_it_and_counts_no_try(app, tenant, bucket, upload, run_scans,
                                                                  monkeypatch, in_tenant, s3_endpoint):
    ticket = new_ticket(tenant.api)
    body = upload(tenant.api, ticket["id"], samples.text(), "notes.txt").get_json()
    monkeypatch.setitem(app.config, "MEDIA_S3_ENDPOINT_URL", dead_endpoint())
    assert run_scans(tenant) == 6  # every round met the outage and left the scan for the next
    assert get_attachment(tenant.api, body["id"])["status"] == "pending"
    with in_tenant(tenant) as session:
        assert session.get(Attachment, body["id"]).scan_attempts == 0
    monkeypatch.setitem(app.config, "MEDIA_S3_ENDPOINT_URL", s3_endpoint)  # S3 is back
    run_scans(tenant)
    assert get_attachment(tenant.api, body["id"])["status"] == "clean"


def test_a_scan_whose_clean_copy_cannot_be_stored_waits_and_counts_no_try(app, tenant, media, upload, run_scans,
                                                                         in_tenant):
    ticket = new_ticket(tenant.api)
    body = upload(tenant.api, ticket["id"], samples.jpeg_with_gps_and_comment(), "home.jpg").get_json()
    with app.app_context():
        tenant_id = active_tenant(tenant.slug).id
        db.session.rollback()
        blocked = storage().path(object_key(tenant_id, body["id"], "clean"))
    blocked.mkdir(parents=True)  # the copy cannot be put in its place: the disk answers an error
    run_scans(tenant)
    assert get_attachment(tenant.api, body["id"])["status"] == "pending"
    with in_tenant(tenant) as session:
        assert session.get(Attachment, body["id"]).scan_attempts == 0
    blocked.rmdir()
    run_scans(tenant)
    found = get_attachment(tenant.api, body["id"])
    assert found["status"] == "clean" and found["thumbnail_url"]


def test_a_scan_whose_working_copy_cannot_be_written_waits_and_counts_no_try(app, tenant, bucket, upload, run_scans,
                                                                            monkeypatch, in_tenant, tmp_path):
    """A full temporary folder is the worker's outage: its raw OSError counted tries, and after
    `MEDIA_SCAN_ATTEMPTS` the file ended `scan_failed`, deleted."""
    assert _scanned_through_a_full_disk(tenant, upload, run_scans, monkeypatch, in_tenant, tmp_path,
                                        samples.text(), "notes.txt", "original") == 6


def test_an_image_whose_clean_copy_cannot_be_written_waits_and_counts_no_try(app, tenant, media, upload, run_scans,
                                                                             monkeypatch, in_tenant, tmp_path):
    """The save's ENOSPC was read as "the image cannot be decoded": an accepted image ended rejected, deleted."""
    _scanned_through_a_full_disk(tenant, upload, run_scans, monkeypatch, in_tenant, tmp_path,
                                 samples.png(), "shot.png", "clean")


def _scanned_through_a_full_disk(tenant, upload, run_scans, monkeypatch, in_tenant, tmp_path, data: bytes,
                                 filename: str, blocked: str) -> int:
    """Scan an upload whose working file `blocked` cannot be written (ENOSPC), then with room again;
    check it waited, pending with no try counted, and ended clean. Return how many jobs ran meanwhile."""
    ticket = new_ticket(tenant.api)
    body = upload(tenant.api, ticket["id"], data, filename).get_json()
    full = tmp_path / "full"
    full.mkdir()
    (full / blocked).symlink_to("/dev/full")  # every write there: ENOSPC, No space left on device
    monkeypatch.setattr(media_services, "tempfile", SimpleNamespace(
        TemporaryDirectory=lambda prefix: contextlib.nullcontext(str(full))))
    ran = run_scans(tenant)
    assert get_attachment(tenant.api, body["id"])["status"] == "pending"
    with in_tenant(tenant) as session:
        assert session.get(Attachment, body["id"]).scan_attempts == 0
    monkeypatch.setattr(media_services, "tempfile", tempfile)  # room again
    run_scans(tenant)
    assert get_attachment(tenant.api, body["id"])["status"] == "clean"
    return ran


def test_a_database_lost_after_the_verdict_counts_no_try(app, tenant, media, upload, run_scans, monkeypatch,
                                                         in_tenant):
    """A scan's transaction lost to a database restart (`OperationalError` recording the verdict) used a
    try each time: three restarts in a scan's life ended a clean file `scan_failed`, deleted."""
    monkeypatch.setitem(app.config, "MEDIA_SCAN_ATTEMPTS", 2)
    ticket = new_ticket(tenant.api)
    body = upload(tenant.api, ticket["id"], samples.pdf(), "contract.pdf").get_json()
    decide, lost = media_services._decide, []

    def restarted(*args, **kwargs):
        if len(lost) < 4:
            lost.append(1)
            raise sa.exc.OperationalError("UPDATE attachments", {}, Exception("terminating connection"))
        return decide(*args, **kwargs)

    monkeypatch.setattr(media_services, "_decide", restarted)
    run_scans(tenant, rounds=10)
    assert len(lost) == 4
    assert get_attachment(tenant.api, body["id"])["status"] == "clean"
