"""NUL characters anywhere in API input answer 422 and write nothing."""


def test_nul_in_query_or_body_is_422(tenant):
    listed = tenant.api.get("/api/v1/tickets?tag=%00")
    assert listed.status_code == 422 and "tag" in listed.get_json()["errors"]
    assert tenant.api.get("/api/v1/tickets/export?format=csv&q=a%00b").status_code == 422
    created = tenant.api.post("/api/v1/tickets", json={"title": "nul\u0000title", "tags": ["ok", "b\u0000d"]})
    assert created.status_code == 422
    assert set(created.get_json()["errors"]) == {"title", "tags.1"}
    assert tenant.api.post("/api/v1/users", json={"email": "a@example.com", "name": "x\u0000",
                                                  "role": "agent"}).status_code == 422
    assert tenant.api.get("/api/v1/tickets").get_json()["items"] == []
    assert len(tenant.api.get("/api/v1/users").get_json()["items"]) == 1
