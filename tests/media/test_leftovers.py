"""Leftovers of killed uploads (a write that never finished, an object whose row was never committed)
are swept away after an hour; what an attachment holds is never touched."""

from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta

import pytest

from app.extensions import db
from app.media import services
from app.media.storage import object_key, storage
from tenants import active_tenant, tenant_context
from tests.helpers import get_attachment, new_ticket
from tests.media import samples
from tests.media.test_outages import bucket, s3_client  # noqa: F401 - fixtures


def sweep(app, tenant, older_than: timedelta) -> int:
    with app.app_context():
        with tenant_context(active_tenant(tenant.slug).ref()):
            swept = services.sweep_leftovers(older_than)
        db.session.remove()
    return swept


def listed(app, tenant) -> set[str]:
    with app.app_context():
        found = {item.key for item in storage().stored(active_tenant(tenant.slug).id)}
        db.session.remove()
    return found


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_a_killed_uploads_leftovers_go_and_attachments_stay(app, tenant, media, upload, run_scans, request, backend):
    if backend == "s3":
        request.getfixturevalue("bucket")
    ticket = new_ticket(tenant.api)
    kept = upload(tenant.api, ticket["id"], samples.png(), "kept.png").get_json()
    run_scans(tenant)
    assert get_attachment(tenant.api, kept["id"])["status"] == "clean"
    with app.app_context():
        tenant_id = active_tenant(tenant.slug).id
        orphan = object_key(tenant_id, uuid.uuid4(), "original")  # stored, then the worker died before commit
        with storage().writer(orphan) as out:
            out.write(b"never committed")
        half = object_key(tenant_id, uuid.uuid4(), "original")  # the worker died mid-stream
        if backend == "local":
            target = storage().path(half)
            target.parent.mkdir(parents=True)
            partial = target.parent / ".original.abcdef.part"
            partial.write_bytes(b"half a file")
            day_ago = time.time() - 86_401
            os.utime(partial, (day_ago, day_ago))  # a write left unfinished a day ago
            going_on = target.parent / ".clean.fedcba.part"  # one being written now
            going_on.write_bytes(b"still coming")
            request.addfinalizer(lambda: going_on.unlink(missing_ok=True))  # the media folder is shared
        db.session.remove()
    before = listed(app, tenant)
    assert orphan in before

    # The orphan is young (its upload may yet commit): only the write unfinished for a day goes.
    assert sweep(app, tenant, timedelta(hours=1)) == (1 if backend == "local" else 0)
    assert listed(app, tenant) == {key for key in before if not key.endswith(".abcdef.part")}
    if backend == "s3":  # made after the young check: moto dates every multipart upload in 2010
        with app.app_context():
            store = storage()
            store.client.create_multipart_upload(Bucket=store.bucket, Key=half)
    assert sweep(app, tenant, timedelta(0)) == (1 if backend == "local" else 2)  # the orphan (and moto's 2010 upload)
    after = listed(app, tenant)
    assert orphan not in after and half not in after
    # The attachment's objects, untouched, and (local) the write still going on, whatever `older_than` says.
    assert sorted(key.rsplit("/", 1)[1] for key in after) == sorted(
        ["clean", "thumbnail", *([".clean.fedcba.part"] if backend == "local" else [])])
    assert tenant.api.get(get_attachment(tenant.api, kept["id"])["download_url"]).status_code in (200, 302)
    if backend == "s3":
        with app.app_context():
            store = storage()
            assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_the_sweep_refuses_to_sweep_young_things(app):
    refused = app.test_cli_runner().invoke(args=["media", "sweep", "--older-than-hours", "0.5"])
    assert refused.exit_code == 2 and "at least 1" in refused.output
    assert app.test_cli_runner().invoke(args=["media", "sweep"]).exit_code == 0


def test_the_relay_sweeps_leftovers_every_media_sweep_hours(app):
    from app.outbox.dispatch import CHORES

    chore = next(c for c in CHORES if c.run is services.sweep_leftovers)
    with app.app_context():
        assert chore.every() == app.config["MEDIA_SWEEP_HOURS"] * 3600 == 24 * 3600
