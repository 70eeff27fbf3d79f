def test_create_and_get_ticket(tenant):
    resp = tenant.api.post("/api/v1/tickets", json={"title": "Printer on fire", "description": "help",
                                                     "priority": "high", "tags": ["hw", "fire"]})
    assert resp.status_code == 201, resp.get_json()
    ticket = resp.get_json()
    assert ticket["number"] == 1
    assert ticket["status"] == "new"
    assert ticket["requester_id"] == tenant.admin_id
    got = tenant.api.get(f"/api/v1/tickets/{ticket['id']}")
    assert got.status_code == 200
    assert got.get_json()["title"] == "Printer on fire"


def test_requester_sees_only_own_tickets(tenant):
    alice = tenant.key_for(tenant.user("requester"))
    bob = tenant.key_for(tenant.user("requester"))
    mine = alice.post("/api/v1/tickets", json={"title": "mine"}).get_json()
    assert alice.get(f"/api/v1/tickets/{mine['id']}").status_code == 200
    assert bob.get(f"/api/v1/tickets/{mine['id']}").status_code == 404
