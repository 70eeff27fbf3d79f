"""Small helpers every API blueprint uses."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, current_app

from app.extensions import Blueprint

API_PREFIX = "/api/v1"


def api_blueprint(name: str, description: str, tag: str) -> Blueprint:
    """Return an API blueprint under /api/v1 (names start with `api_`, which selects JSON errors).

    `tag` groups its operations in the OpenAPI document, in words an integrator would use.
    """
    blp = Blueprint(f"api_{name}", __name__, url_prefix=API_PREFIX, description=description)
    blp.tag = tag
    return blp


def json_response(body: Any, status: int = 200) -> Response:
    """Return `body` as JSON, already serialised (flask-smorest passes a Response through).

    orjson writes UUIDs and times as marshmallow's strings read, so bodies of the read path keep
    them native.
    """
    return current_app.response_class(orjson.dumps(body), status=status, mimetype="application/json")
