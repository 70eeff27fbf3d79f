import secrets

import pytest


def signup(client, **overrides):
    body = {"name": "Acme", "slug": "acme-x", "admin_email": "a@acme.example", "admin_password": "hunter2hunter2"}
    return client.post("/api/v1/signup", json={**body, **overrides})


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def test_signup_creates_tenant_schema_admin_and_key(client, app):
    slug = unique("signup-ok")
    resp = signup(client, slug=slug)
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["tenant"]["slug"] == slug
    assert body["api_key"].startswith("tms_")
    me = client.get(f"/api/v1/users/{body['admin_id']}", headers={"Authorization": f"Bearer {body['api_key']}"})
    assert me.status_code == 200
    assert me.get_json()["role"] == "admin"


def test_taken_slug_is_409(client):
    slug = unique("taken")
    assert signup(client, slug=slug).status_code == 201
    resp = signup(client, slug=slug)
    assert resp.status_code == 409
    assert resp.get_json()["code"] == 409


@pytest.mark.parametrize("slug", ["A", "a", "1abc", "ab_c", "-abc", "x" * 41, "www", "api", "admin", "public"])
def test_bad_or_reserved_slug_is_422(client, slug):
    resp = signup(client, slug=slug)
    assert resp.status_code == 422
    body = resp.get_json()
    assert body["status"] == "Unprocessable Entity"
    assert "slug" in body["errors"]


def test_missing_fields_and_malformed_json(client):
    resp = client.post("/api/v1/signup", json={"name": "x"})
    assert resp.status_code == 422
    assert {"slug", "admin_email", "admin_password"} <= set(resp.get_json()["errors"])
    resp = client.post("/api/v1/signup", data="{not json", content_type="application/json")
    assert resp.status_code == 400
    assert resp.get_json()["code"] == 400
