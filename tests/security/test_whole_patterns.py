"""A pattern checks the whole value: Python's `$` also matches before a final newline."""

from __future__ import annotations

import pytest
from marshmallow import class_registry, validate

import app as _app  # noqa: F401  (imports every schema)
from app.schemas import Whole


def _fields(schema_class) -> list:
    found, stack = [], list(schema_class._declared_fields.values())
    while stack:
        field = stack.pop()
        found.append(field)
        stack.extend(filter(None, [getattr(field, "inner", None), getattr(field, "value_field", None)]))
    return found


def test_every_pattern_a_schema_checks_is_matched_whole(app):
    checked = 0
    for entries in list(class_registry._registry.values()):
        for schema_class in entries:
            for field in _fields(schema_class):
                for validator in field.validators:
                    if isinstance(validator, validate.Regexp):
                        assert isinstance(validator, Whole), (schema_class.__name__, field.name, validator)
                        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("value", ["a" * 20 + "\n", "a" * 20 + "\r\n", "\n" + "a" * 20])
def test_a_webhook_secret_with_a_line_break_is_refused_and_nothing_is_made(tenant, value):
    resp = tenant.api.post("/api/v1/webhooks", json={"url": "https://example.com/hook", "events": ["ticket.created"],
                                                     "secret": value})
    assert resp.status_code == 422 and set(resp.get_json()["errors"]) == {"secret"}, resp.get_json()
    assert tenant.api.get("/api/v1/webhooks").get_json()["items"] == []


@pytest.mark.parametrize("path", ["/api/v1/tickets", "/api/v1/webhooks", "/api/v1/users", "/api/v1/audit-events"])
def test_a_cursor_with_a_final_newline_is_refused_by_its_pattern(tenant, path):
    first = tenant.api.get(f"{path}?limit=1")
    assert first.status_code == 200, first.get_json()
    resp = tenant.api.get(f"{path}?cursor=abc%0A")
    assert resp.status_code == 422 and resp.get_json()["errors"] == {"cursor": ["Not a valid cursor."]}
