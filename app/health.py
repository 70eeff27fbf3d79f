"""Liveness (`/healthz`) and readiness (`/readyz`: database and Redis reachable)."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask, jsonify

from app.extensions import db, redis_client

READY_RETRY_AFTER = 5  # seconds: what a load balancer or client polling readiness should wait
PROBES = frozenset({"/healthz", "/readyz"})  # JSON endpoints: their errors are answered in the API's shape


def init_app(app: Flask) -> None:
    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        checks = {"database": "ok", "redis": "ok"}
        try:
            db.session.execute(sa.text("select 1"))
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        finally:
            db.session.rollback()
        try:
            redis_client().ping()
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
        ready = all(v == "ok" for v in checks.values())
        if ready:
            return jsonify(status="ok", checks=checks)
        return jsonify(status="unavailable", checks=checks), 503, {"Retry-After": str(READY_RETRY_AFTER)}
