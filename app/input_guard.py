"""Refuse NUL characters in API input with a 422: PostgreSQL text cannot hold them.

Checked once for every API request (query string and JSON body) instead of in each schema, so no
field anywhere can carry one to the database and come back as a 500.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from flask_smorest import abort

from app.auth.request_auth import is_api_request

MESSAGE = "NUL characters are not allowed."


def init_app(app: Flask) -> None:
    app.before_request(refuse_nul_characters)


def refuse_nul_characters() -> None:
    if not is_api_request():
        return
    bad = [name for name, value in request.args.items(multi=True) if "\x00" in name or "\x00" in value]
    if request.is_json:
        bad += _fields_with_nul(request.get_json(silent=True), "")
    if bad:
        abort(422, message=MESSAGE, errors={name or "body": [MESSAGE] for name in bad})


def _fields_with_nul(value: Any, path: str) -> list[str]:
    """Return the dotted names of the fields in a JSON value whose text holds a NUL."""
    if isinstance(value, str):
        return [path] if "\x00" in value else []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    found = []
    for key, item in items:
        name = f"{path}.{key}" if path else str(key)
        found += [name] if "\x00" in str(key) else _fields_with_nul(item, name)
    return found
