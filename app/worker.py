"""What RQ workers run: every job enters the app context and its tenant's context first.

Jobs take a tenant slug and ids, never objects. A job locks its outbox row (`SKIP LOCKED`), runs
the handler and marks the row processed in the same transaction, so each row takes effect once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Flask

from app.extensions import db
from app.outbox import BY_NAME
from app.outbox.models import OutboxEvent
from tenants.context import tenant_context
from tenants.resolution import active_tenant

log = logging.getLogger(__name__)
_app: Flask | None = None


def worker_app() -> Flask:
    """Return this worker process's app, built once (an app passed in by tests wins)."""
    global _app
    if _app is None:
        from app import create_app

        _app = create_app()
    return _app


def use_app(app: Flask) -> None:
    """Make jobs in this process use `app` (for in-process workers in tests and benchmarks)."""
    global _app
    _app = app


def run_outbox_row(slug: str, row_id: int) -> str:
    """Run one outbox row's handler for tenant `slug`, exactly once in effect."""
    with worker_app().app_context():
        tenant = active_tenant(slug)
        db.session.rollback()
        if tenant is None:
            return "tenant gone or suspended"
        with tenant_context(tenant.ref()):
            row = db.session.execute(
                sa.select(OutboxEvent).where(OutboxEvent.id == row_id, OutboxEvent.processed_at.is_(None))
                .with_for_update(skip_locked=True)
            ).scalar_one_or_none()
            if row is None:
                db.session.rollback()
                return "already processed or in progress"
            handler = BY_NAME[row.handler]
            try:
                handler.func(row.payload)
                row.processed_at = datetime.now(UTC)
                row.attempts += 1
                db.session.commit()
            except Exception as exc:
                db.session.rollback()
                db.session.execute(sa.update(OutboxEvent).where(OutboxEvent.id == row_id).values(
                    attempts=OutboxEvent.attempts + 1, last_error=f"{type(exc).__name__}: {exc}"[:2000]))
                db.session.commit()
                raise
    return "done"
