"""The S3 backend against a real S3 HTTP endpoint (moto's server), with boto3 as the product uses it:
keys under the tenant's prefix, multipart uploads for large files, nothing left by a refused one,
downloads as 302 to a short-lived signed URL."""

from __future__ import annotations

import io
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from PIL import Image

from app.extensions import db
from tenants import active_tenant
from tests.helpers import get_attachment, new_ticket
from tests.media import samples

MiB = 1024 * 1024


@pytest.fixture
def bucket(app, media, s3_endpoint, monkeypatch) -> str:
    """Switch media to S3 (a fresh bucket on moto's server) for one test."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    name = f"media-{uuid.uuid4().hex[:12]}"
    s3(s3_endpoint).create_bucket(Bucket=name)
    monkeypatch.setitem(app.config, "MEDIA_BACKEND", "s3")
    monkeypatch.setitem(app.config, "MEDIA_S3_BUCKET", name)
    monkeypatch.setitem(app.config, "MEDIA_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setitem(app.config, "MEDIA_S3_REGION", "us-east-1")
    return name


def s3(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test", config=Config(s3={"addressing_style": "path"}))


def keys(endpoint: str, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3(endpoint).list_objects_v2(Bucket=bucket).get("Contents", []))


def tenant_id(app, tenant) -> str:
    with app.app_context():
        found = str(active_tenant(tenant.slug).id)
        db.session.rollback()
    return found


def test_an_image_is_stored_under_its_tenant_scanned_and_served_by_signed_url(app, tenant, other_tenant, bucket,
                                                                               s3_endpoint, upload, run_scans):
    ticket, theirs = new_ticket(tenant.api), new_ticket(other_tenant.api)
    body = upload(tenant.api, ticket["id"], samples.jpeg_with_gps_and_comment(), "home.jpg").get_json()
    other = upload(other_tenant.api, theirs["id"], samples.text(), "b.txt").get_json()
    mine, their_prefix = f"tenants/{tenant_id(app, tenant)}/", f"tenants/{tenant_id(app, other_tenant)}/"
    assert keys(s3_endpoint, bucket) == sorted([f"{mine}attachments/{body['id']}/original",
                                                f"{their_prefix}attachments/{other['id']}/original"])
    run_scans(tenant)
    run_scans(other_tenant)
    found = get_attachment(tenant.api, body["id"])
    assert found["status"] == "clean"
    assert [k for k in keys(s3_endpoint, bucket) if k.startswith(mine)] == [
        f"{mine}attachments/{body['id']}/clean", f"{mine}attachments/{body['id']}/thumbnail"]
    kept = s3(s3_endpoint).get_object(Bucket=bucket, Key=f"{mine}attachments/{body['id']}/clean")["Body"].read()
    assert b"Exif" not in kept and samples.JPEG_COMMENT not in kept and not Image.open(io.BytesIO(kept)).getexif()

    resp = tenant.api.get(found["download_url"])
    assert resp.status_code == 302 and resp.headers["Cache-Control"] == "private, no-store"
    location = resp.headers["Location"]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert location.startswith(f"{s3_endpoint}/{bucket}/{mine}") and query["X-Amz-Expires"] == ["60"]
    with urllib.request.urlopen(location, timeout=10) as served:
        assert served.read() == kept
        assert served.headers["Content-Type"] == "image/jpeg"
        assert served.headers["Content-Disposition"].startswith("inline")
    thumb = tenant.api.get(found["thumbnail_url"])
    assert thumb.status_code == 302 and f"{body['id']}/thumbnail" in thumb.headers["Location"]
    # the other tenant's ids stay out of reach
    assert tenant.api.get(f"/api/v1/attachments/{other['id']}/download").status_code == 404


def test_a_document_is_signed_as_an_attachment_and_a_large_one_goes_in_parts(app, tenant, bucket, s3_endpoint,
                                                                              upload, run_scans):
    ticket = new_ticket(tenant.api)
    big = samples.text(20 * MiB // 38 + 1)[: 20 * MiB]  # 20 MiB: three parts of at most 8 MiB
    body = upload(tenant.api, ticket["id"], big, "server.log").get_json()
    key = f"tenants/{tenant_id(app, tenant)}/attachments/{body['id']}/original"
    head = s3(s3_endpoint).head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == 20 * MiB and head["ETag"].strip('"').endswith("-3")
    run_scans(tenant)
    assert get_attachment(tenant.api, body["id"])["status"] == "clean"
    location = tenant.api.get(body["download_url"]).headers["Location"]
    with urllib.request.urlopen(location, timeout=30) as served:
        assert served.headers["Content-Disposition"].startswith("attachment;")
        assert served.read() == big


def test_a_refused_upload_leaves_no_object_and_no_unfinished_parts(tenant, bucket, s3_endpoint, upload):
    assert tenant.api.patch("/api/v1/media/settings", json={"max_size": 10 * MiB}).status_code == 200
    ticket = new_ticket(tenant.api)
    resp = upload(tenant.api, ticket["id"], samples.text(12 * MiB // 38), "big.txt")
    assert resp.status_code == 413
    assert keys(s3_endpoint, bucket) == []
    assert s3(s3_endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_an_infected_file_is_deleted_from_the_bucket(tenant, bucket, s3_endpoint, upload, run_scans):
    ticket = new_ticket(tenant.api)
    body = upload(tenant.api, ticket["id"], samples.eicar(), "eicar.txt").get_json()
    assert len(keys(s3_endpoint, bucket)) == 1
    run_scans(tenant)
    assert get_attachment(tenant.api, body["id"])["status"] == "infected"
    assert keys(s3_endpoint, bucket) == []
    assert tenant.api.get(body["download_url"]).status_code == 410


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_dropping_a_tenant_deletes_its_files_and_no_one_elses(app, make_tenant, bucket, s3_endpoint, upload,
                                                               stored, run_scans, monkeypatch, backend):
    """`flask tenants drop` deletes "all its data": its files were left in storage for good."""
    if backend == "local":
        monkeypatch.setitem(app.config, "MEDIA_BACKEND", "local")
    gone, kept = make_tenant(), make_tenant()
    uploaded = {}
    for t in (gone, kept):
        ticket = new_ticket(t.api)
        uploaded[t.slug] = [upload(t.api, ticket["id"], samples.png(), f"p{n}.png").get_json()["id"]
                            for n in range(2)]
        run_scans(t)
    assert all(stored(t, a, "thumbnail") for t in (gone, kept) for a in uploaded[t.slug])
    gone_id = tenant_id(app, gone)
    assert app.test_cli_runner().invoke(args=["tenants", "drop", gone.slug, "--yes"]).exit_code == 0
    if backend == "s3":
        assert [k for k in keys(s3_endpoint, bucket) if gone_id in k] == []
    else:
        assert not (Path(app.config["MEDIA_LOCAL_DIR"]) / "tenants" / gone_id).exists()
    assert all(stored(kept, a, v) for a in uploaded[kept.slug] for v in ("clean", "thumbnail"))
