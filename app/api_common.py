"""Small helpers every API blueprint uses."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from flask_smorest import Blueprint, abort

from app.extensions import db

T = TypeVar("T")
API_PREFIX = "/api/v1"


def api_blueprint(name: str, description: str) -> Blueprint:
    """Return an API blueprint under /api/v1 (names start with `api_`, which selects JSON errors)."""
    return Blueprint(f"api_{name}", __name__, url_prefix=API_PREFIX, description=description)


def get_or_404(model: type[T], object_id: uuid.UUID, what: str) -> T:
    """Return the row of the current tenant with this id, or answer 404."""
    row = db.session.get(model, object_id)
    if row is None or getattr(row, "deleted_at", None) is not None:
        abort(404, message=f"No such {what}.")
    return row


@contextmanager
def answer_as(status: int, *exceptions: type[Exception]) -> Iterator[None]:
    """Turn a service's refusal into an HTTP error with its message, discarding the transaction."""
    try:
        yield
    except exceptions as exc:
        db.session.rollback()
        abort(status, message=str(exc))
