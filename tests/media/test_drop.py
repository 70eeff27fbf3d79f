"""Dropping a tenant leaves none of its files: not those a scan stores while the drop waits for it,
not those S3 answers 200 for but refuses to delete; and what the drop reports counts stored files
only, not uploads still being written."""

from __future__ import annotations

import re
import threading
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from botocore.awsrequest import AWSResponse

from app.extensions import db
from app.media import services as media_services
from app.media.storage import LocalStorage, StorageError, object_key, storage
from tenants import active_tenant
from tests.helpers import new_ticket
from tests.media import samples
from tests.media.test_s3 import bucket, keys, tenant_id

__all__ = ["bucket"]  # the S3 fixture, shared with test_s3


def drop(app, slug: str):
    return app.test_cli_runner().invoke(args=["tenants", "drop", slug, "--yes"])


def wait_for_a_drop_waiting_on_a_lock(app, timeout: float = 30) -> None:
    """Return once a DROP SCHEMA has waited for a lock past `deadlock_timeout` (its one deadlock check)."""
    deadline = time.monotonic() + timeout
    with app.app_context():
        while time.monotonic() < deadline:
            waiting = db.session.execute(sa.text(
                "select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
                "and query ilike 'DROP SCHEMA%' "
                "and clock_timestamp() - query_start > current_setting('deadlock_timeout')::interval")).scalar()
            db.session.rollback()
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("the drop never waited for the scan")


def test_files_a_scan_stores_while_the_drop_waits_for_it_are_deleted_too(app, make_tenant, media, upload,
                                                                          run_scans, monkeypatch):
    """The drop deleted the files first, then waited for the scan, which stored its clean copy and thumbnail.

    Released, the scan meets the tables the drop has locked meanwhile and is the deadlock's victim
    (the drop checked for one before the scan waited): its files are stored, its verdict is not.
    """
    gone = make_tenant()
    ticket = new_ticket(gone.api)
    assert upload(gone.api, ticket["id"], samples.jpeg_with_gps_and_comment(), "home.jpg").status_code == 202
    folder = Path(app.config["MEDIA_LOCAL_DIR"]) / "tenants" / tenant_id(app, gone)
    inside, go_on = threading.Event(), threading.Event()
    real_inspect = media_services.inspect

    def held(*args, **kwargs):
        inside.set()
        assert go_on.wait(60)
        return real_inspect(*args, **kwargs)

    monkeypatch.setattr(media_services, "inspect", held)
    scan = threading.Thread(target=run_scans, args=(gone, 1))
    scan.start()
    assert inside.wait(30)
    dropped = {}
    dropping = threading.Thread(target=lambda: dropped.update(result=drop(app, gone.slug)))
    dropping.start()
    try:
        wait_for_a_drop_waiting_on_a_lock(app)
    finally:
        go_on.set()
        scan.join(60)
        dropping.join(60)
    assert dropped["result"].exit_code == 0, dropped["result"].output
    assert not folder.exists(), sorted(p.name for p in folder.rglob("*"))


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_kwargs):
        yield self.data


def refuse_deletes(request, **_kwargs) -> AWSResponse:
    """Answer a DeleteObjects as S3 does when a policy or an object lock refuses it: 200, each key in Errors."""
    errors = "".join(f"<Error><Key>{k}</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
                     for k in re.findall(r"<Key>(.*?)</Key>", request.body.decode()))
    body = f'<?xml version="1.0" encoding="UTF-8"?><DeleteResult>{errors}</DeleteResult>'.encode()
    return AWSResponse(request.url, 200, {"Content-Type": "application/xml"}, _Body(body))


def test_a_drop_whose_files_s3_refuses_to_delete_fails_and_can_be_run_again(app, make_tenant, bucket, s3_endpoint,
                                                                             upload, run_scans):
    """S3 answers 200 with an `Errors` list; the drop read only the status and left the objects for good."""
    gone = make_tenant()
    ticket = new_ticket(gone.api)
    upload(gone.api, ticket["id"], samples.png(), "p.png")
    run_scans(gone)
    prefix = f"tenants/{tenant_id(app, gone)}/"
    left = [k for k in keys(s3_endpoint, bucket) if k.startswith(prefix)]
    assert len(left) == 2  # the clean copy and its thumbnail
    with app.app_context():
        events = storage().client.meta.events
    events.register("before-send.s3.DeleteObjects", refuse_deletes)
    try:
        refused = drop(app, gone.slug)
    finally:
        events.unregister("before-send.s3.DeleteObjects", refuse_deletes)
    assert refused.exit_code != 0 and f"{gone.slug} answers nothing now but is not dropped yet" in refused.output
    assert "refused to delete 2 of 2 objects" in refused.output
    with app.app_context():  # suspended with its schema, so the drop can be run again
        assert active_tenant(gone.slug) is None
        assert db.session.execute(sa.text("select 1 from public.tenants where slug = :s"), {"s": gone.slug}).first()
        db.session.rollback()
    assert [k for k in keys(s3_endpoint, bucket) if k.startswith(prefix)] == left
    assert drop(app, gone.slug).exit_code == 0
    assert [k for k in keys(s3_endpoint, bucket) if k.startswith(prefix)] == []


def test_a_local_drop_counts_stored_files_not_uploads_still_being_written(tmp_path):
    store, tenant = LocalStorage(tmp_path), uuid.uuid4()
    finished = uuid.uuid4()
    for variant in ("clean", "thumbnail"):
        with store.writer(object_key(tenant, finished, variant)) as out:
            out.write(b"stored")
    with pytest.raises(StorageError), store.writer(object_key(tenant, uuid.uuid4(), "original")) as out:
        out.write(b"half of an upload")  # its `.part` file is beside the stored ones
        assert store.delete_tenant(tenant) == 2
    assert not (tmp_path / "tenants" / str(tenant)).exists()
