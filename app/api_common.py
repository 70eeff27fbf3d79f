"""Small helpers every API blueprint uses."""

from __future__ import annotations

from app.extensions import Blueprint

API_PREFIX = "/api/v1"


def api_blueprint(name: str, description: str, tag: str) -> Blueprint:
    """Return an API blueprint under /api/v1 (names start with `api_`, which selects JSON errors).

    `tag` groups its operations in the OpenAPI document, in words an integrator would use.
    """
    blp = Blueprint(f"api_{name}", __name__, url_prefix=API_PREFIX, description=description)
    blp.tag = tag
    return blp
