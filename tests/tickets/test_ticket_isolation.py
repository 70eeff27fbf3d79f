"""Every ticket endpoint answers 404 for another tenant's tickets and for another requester's, and 401 without a key."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class ApiCall:
    method: str
    path: str
    body: dict | None = None

    def send(self, api, ticket: dict):
        path = self.path.format(id=ticket["id"], number=ticket["number"])
        if self.method == "get":
            return api.get(path)
        return getattr(api, self.method)(path, json=self.body)


CALLS = [
    ApiCall("get", "/api/v1/tickets/{id}"),
    ApiCall("get", "/api/v1/tickets/by-number/{number}"),
    ApiCall("patch", "/api/v1/tickets/{id}", {"title": "hijacked"}),
    ApiCall("post", "/api/v1/tickets/{id}/close", {}),
    ApiCall("post", "/api/v1/tickets/{id}/reopen"),
]


@pytest.mark.parametrize("call", CALLS, ids=lambda c: f"{c.method} {c.path}")
def test_another_tenants_ticket_is_404(tenant, other_tenant, new_ticket, call):
    new_ticket("first")
    ticket = new_ticket("secret")  # number 2 here; the other tenant has only a number 1
    other_tenant.api.post("/api/v1/tickets", json={"title": "theirs"})
    assert call.send(other_tenant.api, ticket).status_code == 404
    after = tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()
    assert (after["title"], after["status"], after["version"]) == ("secret", "new", 1)


@pytest.mark.parametrize("call", CALLS, ids=lambda c: f"{c.method} {c.path}")
def test_another_requesters_ticket_is_404(tenant, new_ticket, call):
    alice = tenant.key_for(tenant.user("requester"))
    bob = tenant.key_for(tenant.user("requester"))
    ticket = new_ticket("alice's", api=alice)
    assert call.send(bob, ticket).status_code == 404
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()["version"] == 1


@pytest.mark.parametrize("call", [*CALLS, ApiCall("get", "/api/v1/tickets"), ApiCall("get", "/api/v1/tickets/export"),
                                  ApiCall("post", "/api/v1/tickets", {"title": "x"})],
                         ids=lambda c: f"{c.method} {c.path}")
def test_no_key_is_401(tenant, new_ticket, call):
    ticket = new_ticket()
    tenant.api.key = None
    assert call.send(tenant.api, ticket).status_code == 401


def test_lists_searches_and_exports_never_show_another_tenant(tenant, other_tenant, new_ticket):
    new_ticket("kangaroo invoice")
    theirs = other_tenant.api.post("/api/v1/tickets", json={"title": "kangaroo refund"}).get_json()
    for path in ("/api/v1/tickets", "/api/v1/tickets?q=kangaroo"):
        assert [t["id"] for t in other_tenant.api.get(path).get_json()["items"]] == [theirs["id"]]
    exported = json.loads(other_tenant.api.get("/api/v1/tickets/export?format=json").data)
    assert [t["id"] for t in exported] == [theirs["id"]]
    assert other_tenant.api.get("/api/v1/tickets?" + f"requester_id={tenant.admin_id}").get_json()["items"] == []


@pytest.mark.parametrize("path", ["/api/v1/tickets/not-a-uuid", "/api/v1/tickets/by-number/abc",
                                  "/api/v1/tickets/by-number/-1", "/api/v1/tickets/by-number/0",
                                  "/api/v1/tickets/by-number/99999999999999999999999",
                                  "/api/v1/tickets/00000000-0000-4000-8000-000000000000"])
def test_unknown_or_malformed_ids_are_404(tenant, new_ticket, path):
    new_ticket()
    assert tenant.api.get(path).status_code == 404


def test_patch_of_a_malformed_id_is_404_and_writes_nothing(tenant, new_ticket, table_counts):
    new_ticket()
    counts = table_counts(tenant)
    assert tenant.api.patch("/api/v1/tickets/1;drop", json={"title": "x"}).status_code == 404
    assert tenant.api.post("/api/v1/tickets/xyz/close", json={}).status_code == 404
    assert table_counts(tenant) == counts


# Bodies a requester may not send at all: a ticket they cannot see must still answer 404, as any
# request about it does, never the 403 of the body (which would treat every id alike, but is not the contract).
REQUESTER_REFUSED = [
    ApiCall("patch", "/api/v1/tickets/{id}", {"status": "open"}),
    ApiCall("patch", "/api/v1/tickets/{id}", {"priority": "urgent", "title": "x"}),
    ApiCall("post", "/api/v1/tickets/{id}/messages", {"body": "psst", "internal": True}),
]


@pytest.mark.parametrize("call", REQUESTER_REFUSED, ids=lambda c: f"{c.method} {c.path} {sorted(c.body)}")
def test_what_a_requester_may_not_send_is_404_on_a_ticket_they_cannot_see(tenant, other_tenant, new_ticket, call):
    import uuid

    alice = tenant.key_for(tenant.user("requester"))
    bob = tenant.key_for(tenant.user("requester"))
    alices = new_ticket("alice's", api=alice)
    theirs = other_tenant.api.post("/api/v1/tickets", json={"title": "theirs"}).get_json()
    nobodys = {"id": str(uuid.uuid4()), "number": 0}
    for ticket in (alices, theirs, nobodys):
        refused = call.send(bob, ticket)
        assert refused.status_code == 404 and refused.get_json()["code"] == 404, (ticket["id"], refused.get_json())
    assert call.send(alice, alices).status_code == 403  # her own: the body is what is refused
    assert tenant.api.get(f"/api/v1/tickets/{alices['id']}").get_json()["version"] == 1
    assert tenant.api.get(f"/api/v1/tickets/{alices['id']}/messages").get_json()["items"] == []
