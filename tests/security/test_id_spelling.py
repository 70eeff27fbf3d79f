"""An id is accepted in one spelling only, 8-4-4-4-12 hex digits, and the document says so.

Python's uuid.UUID reads `{urn:uuid:...}`, hex with hyphens anywhere and more as
the same id. A server that does the same answers lookalikes of a real id as the id itself, and
its document (`format: uuid`, an annotation only) cannot tell a client which spellings work. So
every id a client sends carries the pattern the server enforces, and each lookalike of a real id
is refused with 422 naming the field, in bodies, queries and page forms alike.
"""

from __future__ import annotations

import re

import pytest

from app.schemas import UUID_PATTERN
from tests.helpers import new_ticket


def lookalikes(value: str) -> list[str]:
    """Other spellings uuid.UUID reads as `value`, and text that is no id at all."""
    plain = value.replace("-", "")
    return [f"{{{value}}}", f"urn:uuid:{value}", f"uuid:{value}", plain, f"{plain[:1]}-{plain[1:]}",
            f"{value}\n", f" {value}", "None", "null", ""]


def _id_slots(node, where: str):
    """Yield (where, schema) for every uuid-format string a client may send, anywhere in the document."""
    if isinstance(node, dict):
        if node.get("format") == "uuid" and not node.get("readOnly"):
            yield where, node
        for key, value in node.items():
            yield from _id_slots(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _id_slots(value, f"{where}/{i}")


def test_every_id_a_client_sends_is_documented_with_the_pattern_the_server_enforces(app):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    slots = list(_id_slots(spec["paths"], "paths")) + list(_id_slots(spec["components"]["schemas"], "schemas"))
    sent = [(where, schema) for where, schema in slots if "/responses/" not in where]
    assert len(sent) > 20  # bodies and queries of tickets, rules, keys, messages, audit, webhooks...
    assert [where for where, schema in sent if schema.get("pattern") != UUID_PATTERN] == []
    # the pattern is the server's rule (read as JSON Schema does: `$` is the end of the text):
    # canonical spellings in any case pass, every lookalike fails
    whole = re.compile(UUID_PATTERN.removeprefix("^").removesuffix("$"))
    assert whole.fullmatch("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".upper())
    assert not any(whole.fullmatch(v) for v in lookalikes("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"))


@pytest.fixture
def desk(tenant):
    agent = tenant.user("agent")
    team = tenant.api.post("/api/v1/teams", json={"name": "Support"}).get_json()
    ticket = new_ticket(tenant.api, "Printer on fire")
    return tenant, agent, team, ticket


def test_lookalikes_of_a_real_id_are_refused_in_bodies_and_change_nothing(desk):
    tenant, agent, team, ticket = desk
    before = tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()
    for field, real in (("team_id", team["id"]), ("assignee_id", agent["id"])):
        for spelling in lookalikes(real):
            resp = tenant.api.patch(f"/api/v1/tickets/{ticket['id']}", json={field: spelling})
            assert resp.status_code == 422, (field, spelling, resp.status_code)
            assert field in resp.get_json()["errors"], (field, spelling)
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json() == before
    for spelling in lookalikes(team["id"]):
        resp = tenant.api.post("/api/v1/assignment-rules", json={"name": "r", "team_id": spelling,
                                                                  "strategy": "round_robin"})
        assert resp.status_code == 422 and "team_id" in resp.get_json()["errors"], spelling
    assert tenant.api.get("/api/v1/assignment-rules").get_json()["items"] == []
    # the canonical spelling, in either case, is the id
    upper = tenant.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"team_id": team["id"].upper()})
    assert upper.status_code == 200 and upper.get_json()["team_id"] == team["id"]


@pytest.mark.parametrize("path", ["/api/v1/tickets", "/api/v1/tickets/export"])
def test_lookalikes_of_a_real_id_are_refused_in_filters(desk, path):
    tenant, _agent, team, _ticket = desk
    for spelling in lookalikes(team["id"]):
        if spelling == "":
            continue  # an empty filter is no filter
        resp = tenant.api.get(path, query_string={"team_id": spelling})
        assert resp.status_code == 422 and "team_id" in resp.get_json()["errors"], (spelling, resp.status_code)
