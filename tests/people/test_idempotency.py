"""`Idempotency-Key` on the people endpoints that create."""


def test_repeat_user_create_returns_the_first_response(tenant):
    body = {"email": "once@example.com", "name": "Once", "role": "agent"}
    headers = {"Idempotency-Key": "user-1"}
    first = tenant.api.post("/api/v1/users", json=body, headers=headers)
    again = tenant.api.post("/api/v1/users", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(tenant.api.get("/api/v1/users?role=agent").get_json()["items"]) == 1
    changed = tenant.api.post("/api/v1/users", json={**body, "name": "Twice"}, headers=headers)
    assert changed.status_code == 422 and "Idempotency-Key" in changed.get_json()["errors"]


def test_repeat_team_create_and_failed_requests_keep_the_key_free(tenant):
    headers = {"Idempotency-Key": "team-1"}
    assert tenant.api.post("/api/v1/teams", json={"name": ""}, headers=headers).status_code == 422
    first = tenant.api.post("/api/v1/teams", json={"name": "Desk"}, headers=headers)
    again = tenant.api.post("/api/v1/teams", json={"name": "Desk"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json()["id"] == first.get_json()["id"]
    assert len(tenant.api.get("/api/v1/teams").get_json()["items"]) == 1
