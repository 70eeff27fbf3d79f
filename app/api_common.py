"""Small helpers every API blueprint uses."""

from __future__ import annotations

from app.extensions import Blueprint

API_PREFIX = "/api/v1"


def api_blueprint(name: str, description: str) -> Blueprint:
    """Return an API blueprint under /api/v1 (names start with `api_`, which selects JSON errors)."""
    return Blueprint(f"api_{name}", __name__, url_prefix=API_PREFIX, description=description)
