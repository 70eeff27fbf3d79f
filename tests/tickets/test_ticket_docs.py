"""The ticket operations, their parameters and their error answers are in the OpenAPI document."""

from __future__ import annotations


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
