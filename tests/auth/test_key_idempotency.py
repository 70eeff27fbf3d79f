"""`Idempotency-Key` on the creates that show a secret once: a new key, a rotated key.

A repeat gets the first response (the same key) and creates nothing; what is kept to replay it is
sealed with the Idempotency-Key, and the Idempotency-Key itself is kept only as an HMAC, so the
database alone never holds a key in the clear.
"""

from __future__ import annotations

import sqlalchemy as sa

from app.idempotency import IdempotencyRecord


def _keys(tenant) -> list[dict]:
    return tenant.api.get("/api/v1/api-keys").get_json()["items"]


def test_a_repeated_key_create_replays_the_same_key_and_creates_nothing(tenant, in_tenant):
    headers = {"Idempotency-Key": "ci-key-1"}
    before = len(_keys(tenant))
    first = tenant.api.post("/api/v1/api-keys", json={"name": "ci", "role": "agent"}, headers=headers)
    again = tenant.api.post("/api/v1/api-keys", json={"name": "ci", "role": "agent"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert len(_keys(tenant)) == before + 1
    secret = first.get_json()["key"]
    with in_tenant(tenant) as session:
        kept = session.execute(sa.select(IdempotencyRecord.key, IdempotencyRecord.response)).all()
    assert kept and all("ci-key-1" not in key and key.startswith("sealed:") for key, _ in kept)
    assert all(secret.encode() not in bytes(response) and b'"key"' not in bytes(response) for _, response in kept)
    # the same Idempotency-Key with another body is refused; another key creates another
    other = tenant.api.post("/api/v1/api-keys", json={"name": "cd", "role": "agent"}, headers=headers)
    assert other.status_code == 422 and "Idempotency-Key" in other.get_json()["errors"]
    fresh = tenant.api.post("/api/v1/api-keys", json={"name": "ci", "role": "agent"},
                            headers={"Idempotency-Key": "ci-key-2"})
    assert fresh.status_code == 201 and fresh.get_json()["key"] != secret
    # the replayed key works
    assert tenant.api.client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {secret}"}).status_code == 200


def test_a_repeated_rotation_replays_the_same_successor(tenant):
    created = tenant.api.post("/api/v1/api-keys", json={"name": "sync", "role": "agent"}).get_json()
    headers = {"Idempotency-Key": "rotate-1"}
    url = f"/api/v1/api-keys/{created['id']}/rotate"
    first = tenant.api.post(url, json={"grace_seconds": 600}, headers=headers)
    again = tenant.api.post(url, json={"grace_seconds": 600}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert [k["name"] for k in _keys(tenant)].count("sync") == 2  # the old one in its grace period, one successor


def test_a_sealed_replay_is_another_key_holders_to_read_only_with_the_same_key(tenant):
    """Idempotency-Keys belong to the API key that sent them: another admin key's same Idempotency-Key
    is its own (it creates), and never replays the first key's secret."""
    second_admin = tenant.key_for({"id": tenant.admin_id, "role": "admin"})
    headers = {"Idempotency-Key": "shared-name"}
    first = tenant.api.post("/api/v1/api-keys", json={"name": "x", "role": "agent"}, headers=headers)
    other = second_admin.post("/api/v1/api-keys", json={"name": "x", "role": "agent"}, headers=headers)
    assert first.status_code == other.status_code == 201
    assert other.get_json()["key"] != first.get_json()["key"] and "Idempotent-Replayed" not in other.headers
