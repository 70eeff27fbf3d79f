"""The ticket operations, their parameters and their error answers are in the OpenAPI document."""

from __future__ import annotations

import re


def test_every_ticket_operation_is_documented(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    expected = {
        "/api/v1/tickets": {"get", "post"},
        "/api/v1/tickets/export": {"get"},
        "/api/v1/tickets/{ticket_id}": {"get", "patch"},
        "/api/v1/tickets/by-number/{number}": {"get"},
        "/api/v1/tickets/{ticket_id}/close": {"post"},
        "/api/v1/tickets/{ticket_id}/reopen": {"post"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
    listing = paths["/api/v1/tickets"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"status", "priority", "assignee_id", "team_id", "requester_id", "tag", "created_after",
            "created_before", "q", "sort", "limit", "cursor"} <= names
    patch = paths["/api/v1/tickets/{ticket_id}"]["patch"]
    assert {"200", "409", "412", "422"} <= set(patch["responses"])
    assert "ETag" in patch["responses"]["200"]["headers"]
    create = paths["/api/v1/tickets"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in create.get("parameters", [])}


BLANK_AND_NOT = ["\n", " ", "\t \r\n", "\u200b", "\u3000", "\u00a0\u2028", "x", " x\n", "\u00e9", "\U0001f525"]


def test_the_document_refuses_the_blank_titles_the_server_refuses(tenant):
    # A fuzzer generated the title "\n" from a document that allowed it; the server refused it.
    schemas = tenant.api.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    ticket = tenant.api.post("/api/v1/tickets", json={"title": "A title"}).get_json()
    for schema in ("Ticket", "TicketUpdate"):
        pattern = schemas[schema]["properties"]["title"]["pattern"]
        for title in BLANK_AND_NOT:
            if schema == "Ticket":
                answer = tenant.api.post("/api/v1/tickets", json={"title": title})
            else:
                answer = tenant.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"title": title},
                                          headers={"If-Match": "*"})
            assert answer.status_code in (200, 201, 422), answer.get_json()
            assert (answer.status_code != 422) == (re.search(pattern, title) is not None), (schema, title)
