"""A query parameter that takes one value, given twice, is refused (422 naming it), never read as its first.

webargs reads the first of `status=new&status=closed` (or `limit=1&limit=500`) and drops the
rest, so a caller got another answer than the one asked for, without a word. Lists are spelled
with commas (`status=new,closed`), as the OpenAPI document says of them (`explode: false`), and
keep working. The operations come from the served OpenAPI document, so a new one is swept too.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import quote

import pytest
import websocket

from app.extensions import REPEATED
from tests.helpers import new_ticket

WEBSOCKETS = "x-websockets"


def _value(schema: dict) -> str:
    """Return a value the parameter could take (the refusal must be for the repeat, not the value)."""
    if schema.get("type") == "array":
        return _value(schema.get("items", {}))
    if "enum" in schema:
        return str(schema["enum"][0])
    if schema.get("type") in ("integer", "number"):
        return str(max(schema.get("minimum", 1), 1))
    if schema.get("type") == "boolean":
        return "true"
    return {"uuid": str(uuid.uuid4()), "date": "2024-01-01",
            "date-time": "2024-01-01T00:00:00+00:00"}.get(schema.get("format"), "x")


def _repeated_cases(spec: dict, where: str) -> list[tuple[str, str, str]]:
    """Return (path, parameter, URL giving it twice) for each query parameter of each GET in `where`."""
    cases = []
    for path, item in spec.get(where, {}).items():
        if "get" not in item:
            continue
        params = [*item.get("parameters", []), *item["get"].get("parameters", [])]
        real = path
        for param in params:
            if param["in"] == "path" and param.get("schema", {}).get("type") == "integer":
                real = real.replace("{" + param["name"] + "}", "1")
        real = re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), real)  # ids: the refusal comes before any lookup
        for param in params:
            if param["in"] == "query":
                value = quote(_value(param.get("schema", {})))
                cases.append((path, param["name"], f"{real}?{param['name']}={value}&{param['name']}={value}"))
    return cases


def test_every_query_parameter_of_every_get_operation_given_twice_answers_422_naming_it(tenant):
    spec = tenant.api.client.get("/api/v1/openapi.json").get_json()
    cases = _repeated_cases(spec, "paths")
    assert len({path for path, _, _ in cases}) >= 10, "the sweep found too few operations with query parameters"
    failures = []
    for path, name, url in cases:
        resp = tenant.api.get(url)
        body = resp.get_json(silent=True) or {}
        if resp.status_code != 422 or body.get("errors", {}).get(name) != [REPEATED]:
            failures.append((path, name, resp.status_code, body))
    assert not failures, "\n".join(map(str, failures))


def test_every_get_operation_refuses_a_parameter_it_does_not_know_naming_it(tenant):
    """A misspelt filter (`?afterseq=2`, `?stauts=open`) answered 200 with everything on most lists."""
    spec = tenant.api.client.get("/api/v1/openapi.json").get_json()
    paths = {path for path, item in spec["paths"].items() if "get" in item}
    failures = []
    for path in sorted(paths):
        real = re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path.replace("{number}", "1"))
        resp = tenant.api.get(f"{real}?misspelt=1")
        body = resp.get_json(silent=True) or {}
        if resp.status_code != 422 or "misspelt" not in body.get("errors", {}):
            failures.append((path, resp.status_code, body))
    # Operations with no query parameters at all take none; every other one names the stranger.
    without = {path for path in paths if not any(p["in"] == "query" for p in
                                                 [*spec["paths"][path].get("parameters", []),
                                                  *spec["paths"][path]["get"].get("parameters", [])])}
    assert [f for f in failures if f[0] not in without] == []
    assert len(paths - without) >= 10


def test_the_stream_refuses_a_repeated_query_parameter_before_the_handshake(live_server, tenant):
    ticket = new_ticket(tenant.api)
    spec = tenant.api.client.get("/api/v1/openapi.json").get_json()
    cases = _repeated_cases(spec, WEBSOCKETS)
    assert [name for _, name, _ in cases] == ["after_seq", "with_ticket", "token"]
    for _, name, url in cases:
        url = url.replace(url.split("/stream", 1)[0], f"/api/v1/tickets/{ticket['id']}")
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(f"ws://127.0.0.1:{live_server.port}{url}",
                                        header=[f"Authorization: Bearer {tenant.key}"], timeout=5)
        assert refused.value.status_code == 422, (name, refused.value)
        assert REPEATED.encode() in refused.value.resp_body


def test_lists_spelled_with_commas_still_work(tenant):
    low = new_ticket(tenant.api, "one", priority="low")
    urgent = new_ticket(tenant.api, "two", priority="urgent")
    new_ticket(tenant.api, "three", priority="high")
    assert tenant.api.post(f"/api/v1/tickets/{urgent['id']}/close").status_code == 200

    def found(query: str) -> set[str]:
        resp = tenant.api.get(f"/api/v1/tickets?{query}")
        assert resp.status_code == 200, resp.get_json()
        return {t["title"] for t in resp.get_json()["items"]}

    assert found("status=new,closed&priority=low,urgent") == {"one", "two"}
    assert found("status=closed") == {"two"}
    assert found("priority=low,high&limit=5") == {"one", "three"}
    assert low["priority"] == "low"
    events = tenant.api.get("/api/v1/events?types=ticket.created,ticket.closed")
    assert events.status_code == 200, events.get_json()
    assert {e["type"] for e in events.get_json()["items"]} == {"ticket.created", "ticket.closed"}
