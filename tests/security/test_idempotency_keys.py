"""An `Idempotency-Key` reused with another request is a 422 naming the header, on every operation that takes one.

Issue 15 follows the IETF Idempotency-Key draft: the same key and body replay the first answer;
the same key with another body (or on another resource) is refused with 422 and creates nothing.
The operations come from the served OpenAPI document, so a new creating operation that takes
the header fails here until it has a case below.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.audit import AuditEntry
from app.outbox.models import Event
from tests.helpers import new_ticket

# The upload's key is checked against the file it stored; tests/media/test_upload.py
# (test_idempotency_key_replays_the_same_file_and_refuses_other_bytes) covers it with real files.
# A signup has no API key; tests/tenancy/test_signup.py covers its key.
COVERED_ELSEWHERE = {("post", "/api/v1/tickets/{ticket_id}/attachments"), ("post", "/api/v1/signup")}


def _cases(tenant) -> dict[tuple[str, str], tuple[str, dict, dict, str | None]]:
    """(method, documented path) -> (path, body, another body, another path taking the same body or None)."""
    team = tenant.api.post("/api/v1/teams", json={"name": "Support"}).get_json()
    ticket, other = new_ticket(tenant.api, "one"), new_ticket(tenant.api, "two")
    user = {"email": "ada@example.com", "name": "Ada", "role": "agent", "password": "long password"}
    rule = {"name": "all", "team_id": team["id"], "strategy": "round_robin"}
    hook = {"url": "https://93.184.216.34/hooks", "events": ["ticket.created"]}
    messages = "/api/v1/tickets/{}/messages"
    keys = [tenant.api.post("/api/v1/api-keys", json={"name": n, "role": "agent"}).get_json()["id"] for n in "ab"]
    rotate = "/api/v1/api-keys/{}/rotate"
    return {
        ("post", "/api/v1/users"): ("/api/v1/users", user, {**user, "name": "Bea"}, None),
        ("post", "/api/v1/teams"): ("/api/v1/teams", {"name": "Billing"}, {"name": "Sales"}, None),
        ("post", "/api/v1/tickets"): ("/api/v1/tickets", {"title": "once"}, {"title": "twice"}, None),
        ("post", "/api/v1/tickets/{ticket_id}/messages"): (
            messages.format(ticket["id"]), {"body": "once"}, {"body": "twice"}, messages.format(other["id"])),
        ("post", "/api/v1/assignment-rules"): ("/api/v1/assignment-rules", rule, {**rule, "name": "some"}, None),
        ("post", "/api/v1/webhooks"): ("/api/v1/webhooks", hook, {**hook, "events": ["ticket.closed"]}, None),
        ("post", "/api/v1/api-keys"): ("/api/v1/api-keys", {"name": "ci", "role": "agent"},
                                       {"name": "cd", "role": "agent"}, None),
        ("post", "/api/v1/api-keys/{key_id}/rotate"): (
            rotate.format(keys[0]), {"grace_seconds": 60}, {"grace_seconds": 120}, rotate.format(keys[1])),
    }


def _documented(client) -> set[tuple[str, str]]:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    return {(method, path) for path, operations in paths.items() for method, operation in operations.items()
            if isinstance(operation, dict)
            and any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", []))}


def test_every_operation_taking_a_key_has_a_case(client, tenant):
    assert _documented(client) == set(_cases(tenant)) | COVERED_ELSEWHERE


@pytest.mark.parametrize("operation", [
    ("post", "/api/v1/users"), ("post", "/api/v1/teams"), ("post", "/api/v1/tickets"),
    ("post", "/api/v1/tickets/{ticket_id}/messages"), ("post", "/api/v1/assignment-rules"),
    ("post", "/api/v1/webhooks"), ("post", "/api/v1/api-keys"), ("post", "/api/v1/api-keys/{key_id}/rotate")])
def test_a_key_reused_with_another_request_is_422_and_creates_nothing(tenant, in_tenant, operation):
    path, body, another, elsewhere = _cases(tenant)[operation]
    headers = {"Idempotency-Key": "reused-key"}
    first = tenant.api.post(path, json=body, headers=headers)
    assert first.status_code == 201, first.get_json()
    again = tenant.api.post(path, json=body, headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()

    def written() -> tuple[int, int]:
        with in_tenant(tenant) as session:
            return tuple(session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()
                         for model in (AuditEntry, Event))

    before = written()
    refusals = [tenant.api.post(path, json=another, headers=headers)]
    if elsewhere:
        refusals.append(tenant.api.post(elsewhere, json=body, headers=headers))
    for refused in refusals:
        assert refused.status_code == 422, refused.get_json()
        error = refused.get_json()
        assert error["code"] == 422 and list(error["errors"]) == ["Idempotency-Key"]
        assert "Idempotent-Replayed" not in refused.headers
    assert written() == before
