"""Fixtures for media tests: the app set up for uploads, scans run on demand, stored bytes read back.

Scans run in this process through the same job entry point RQ workers use
(`app.worker.run_outbox_row`), when a test says so; tests about real worker processes start
them (tests/media/test_workers.py).
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.media import handlers
from app.media.storage import object_key, storage
from app.outbox.models import OutboxRow
from app.worker import run_outbox_row, use_app
from tenants import active_tenant, tenant_context
from tests.helpers import upload_file

SCAN_HANDLER = f"{handlers.scan_uploaded_attachment.__module__}.{handlers.scan_uploaded_attachment.__qualname__}"
DELETE_HANDLER = f"{handlers.delete_attachment_objects.__module__}.{handlers.delete_attachment_objects.__qualname__}"
DISCARD_HANDLER = f"{handlers.discard_scanned_objects.__module__}.{handlers.discard_scanned_objects.__qualname__}"


@pytest.fixture
def media(app, clamd_socket, monkeypatch):
    """Configure media for one test: local storage, the test clamd, scans only when a test runs them."""
    monkeypatch.setitem(app.config, "MEDIA_BACKEND", "local")
    monkeypatch.setitem(app.config, "CLAMD_SOCKET", clamd_socket)
    monkeypatch.setitem(app.config, "CLAMD_HOST", "")
    monkeypatch.setitem(app.config, "MEDIA_ANTIVIRUS", "clamd")
    monkeypatch.setitem(app.config, "OUTBOX_FAST_PATH", False)
    return app


@pytest.fixture
def upload(media) -> Callable:
    """Return `upload(api, ticket_id, data, filename, content_type=None, headers=None)` (media configured)."""
    return upload_file


@pytest.fixture
def run_scans(app) -> Callable[..., int]:
    """Return `run(tenant)`: run every pending media job of the tenant now (scans, and deletions of a
    deleted file's objects and of those a verdict did away with), retrying failed ones a few times.

    Returns how many jobs ran.
    """

    def run(tenant, rounds: int = 6) -> int:
        use_app(app)
        ran = 0
        for _ in range(rounds):
            with app.app_context():
                ref = active_tenant(tenant.slug).ref()
                db.session.rollback()
                with tenant_context(ref):
                    rows = db.session.execute(sa.select(OutboxRow.id).where(
                        OutboxRow.handler.in_([SCAN_HANDLER, DELETE_HANDLER, DISCARD_HANDLER]),
                        OutboxRow.processed_at.is_(None)).order_by(OutboxRow.id)).scalars().all()
                    db.session.rollback()
            if not rows:
                break
            for row_id in rows:
                ran += 1
                # a job's failure is recorded on its row; RQ would retry it, and so does the next round
                with contextlib.suppress(Exception):
                    run_outbox_row(tenant.slug, row_id)
        return ran

    return run


@pytest.fixture
def stored(app) -> Callable[..., bytes | None]:
    """Return `read(tenant, attachment_id, variant)`: the bytes in storage, or None if there are none."""

    def read(tenant, attachment_id: str, variant: str = "original") -> bytes | None:
        with app.app_context():
            tenant_id = active_tenant(tenant.slug).id
            db.session.rollback()
            key = object_key(tenant_id, uuid.UUID(attachment_id), variant)
            if not storage().exists(key):
                return None
            out = io.BytesIO()
            storage().copy_to(key, out)
            return out.getvalue()

    return read
