"""A bad body is refused in a few lines, whatever its size: a 1 MB list of bad items was answered with
19 MB of errors, one per item, after seconds of CPU checking each.

Every array a JSON request body takes, found in the served OpenAPI document, is sent with far more
items than it allows, each of the wrong type: the list is refused as too long before its items are
read. Bodies that would name many fields (many unknown fields, many refused strings) name at most
`MAX_FIELD_ERRORS`.
"""

from __future__ import annotations

import uuid

import pytest

from app.errors import MAX_FIELD_ERRORS

ITEMS = 100_000


def _resolve(document: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _array_fields(document: dict, schema: dict, prefix: str = "") -> list[tuple[str, int | None]]:
    """Return (dotted name, maxItems) of each array in a body schema, one level of objects deep."""
    found = []
    for name, prop in _resolve(document, schema).get("properties", {}).items():
        if prop.get("readOnly"):
            continue
        prop = _resolve(document, prop)
        if prop.get("type") == "array":
            found.append((prefix + name, prop.get("maxItems")))
        elif prop.get("type") == "object" and not prefix:
            found.extend(_array_fields(document, prop, f"{name}."))
    return found


def _bodies(app) -> list[tuple[str, str, str, int | None]]:
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    cases = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method not in ("post", "put", "patch"):
                continue
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if content:
                cases += [(method, path, name, most) for name, most in _array_fields(document, content["schema"])]
    return cases


def _path(template: str) -> str:
    parts = [str(uuid.uuid4()) if part.startswith("{") else part for part in template.split("/")]
    return "/".join(parts)


def _nested(name: str, value: object) -> dict:
    head, _, rest = name.partition(".")
    return {head: _nested(rest, value) if rest else value}


def test_every_bounded_array_of_a_body_is_refused_as_too_long_before_its_items_are_read(app, tenant):
    cases = _bodies(app)
    assert len(cases) >= 8, cases  # tags, skills, conditions, events, attachment ids, media types...
    assert [case for case in cases if case[3] is None] == []  # every list a body takes has a bound
    for method, template, name, _most in cases:
        resp = getattr(tenant.api, method)(_path(template), json=_nested(name, [1] * ITEMS))
        body = resp.get_json()
        assert 400 <= resp.status_code < 500 and len(resp.data) < 4096, (method, template, name, resp.status_code,
                                                                         len(resp.data))
        if resp.status_code == 422:
            assert not any(field.startswith(f"{name}.") for field in body.get("errors", {})), (template, body)


@pytest.mark.parametrize("body", [
    {f"field{i}": 1 for i in range(ITEMS // 4)},                                   # unknown fields, each named
    {"title": "t", "tags": ["\x01"] * 50, "description": "\x00", **{f"x{i}": "\x00" for i in range(ITEMS // 4)}},
])
def test_a_body_that_would_name_many_fields_names_a_few(tenant, body):
    resp = tenant.api.post("/api/v1/tickets", json=body)
    assert resp.status_code in (400, 422) and len(resp.data) < 8192
    assert 1 <= len(resp.get_json()["errors"]) <= MAX_FIELD_ERRORS
    assert tenant.api.get("/api/v1/tickets").get_json()["items"] == []
