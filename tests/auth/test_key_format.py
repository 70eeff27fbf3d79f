"""Key format (prefix and checksum, as GitHub's tokens), refusal before any lookup, and rotation."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid

import sqlalchemy as sa

from app.auth.keys import lookup_id
from app.extensions import db
from tenants import ApiKey, active_tenant
from tests.helpers import ApiClient

KEY = re.compile(r"tms_[0-9A-Za-z]{48}")


def test_keys_have_a_prefix_and_a_checksum(tenant):
    created = tenant.api.post("/api/v1/api-keys", json={"name": "ci"}).get_json()
    assert KEY.fullmatch(created["key"]) and KEY.fullmatch(tenant.key)
    assert created["prefix"] == created["key"][4:16]
    body = created["key"]
    flipped = body[:20] + ("a" if body[20] != "a" else "b") + body[21:]
    assert lookup_id(body) == created["prefix"] and lookup_id(flipped) is None


def test_a_malformed_key_is_refused_without_asking_the_database(app, tenant):
    statements = []

    def count(*_args):
        statements.append(1)

    key = tenant.key
    bad = [key[:-1] + ("0" if key[-1] != "0" else "1"), key + "x", key[:-3], key.replace("tms_", "tmz_"),
           "tms_" + "0" * 48, key.upper()]
    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        for candidate in bad:
            resp = app.test_client().get("/api/v1/users", headers={"Authorization": f"Bearer {candidate}"})
            assert resp.status_code == 401, candidate
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert statements == []


def test_keys_in_the_earlier_format_still_work(app, tenant, in_tenant):
    legacy = f"tms_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
    with in_tenant(tenant) as session:
        admin_id = uuid.UUID(tenant.admin_id)
        tenant_id = session.execute(sa.text("select id from public.tenants where slug = :s"),
                                    {"s": tenant.slug}).scalar_one()
        session.add(ApiKey(id=uuid.uuid4(), tenant_id=tenant_id, prefix=legacy[4:16],
                           key_hash=hashlib.sha256(legacy.encode()).hexdigest(), name="old", role="admin",
                           user_id=admin_id))
        session.commit()
    assert ApiClient(tenant.api.client, legacy).get("/api/v1/users").status_code == 200


def test_rotation_with_a_grace_period_keeps_both_keys_working_until_it_ends(tenant, in_tenant):
    old = tenant.api.post("/api/v1/api-keys", json={"name": "deploy", "role": "agent"}).get_json()
    old_api = ApiClient(tenant.api.client, old["key"])
    assert old_api.get("/api/v1/users").status_code == 200  # cached from here on
    resp = tenant.api.post(f"/api/v1/api-keys/{old['id']}/rotate", json={"grace_seconds": 3600})
    assert resp.status_code == 201, resp.get_json()
    new = resp.get_json()
    assert new["replaced_key_id"] == old["id"] and new["replaced_key_expires_at"]
    assert (new["name"], new["role"], new["user_id"]) == (old["name"], old["role"], old["user_id"])
    new_api = ApiClient(tenant.api.client, new["key"])
    assert old_api.get("/api/v1/users").status_code == 200 and new_api.get("/api/v1/users").status_code == 200
    with in_tenant(tenant) as session:  # the grace period runs out
        session.execute(sa.update(ApiKey).where(ApiKey.id == uuid.UUID(old["id"]))
                        .values(expires_at=sa.func.now() - sa.text("interval '1 second'")))
        session.commit()
    assert old_api.get("/api/v1/users").status_code == 401  # even from the cache
    assert new_api.get("/api/v1/users").status_code == 200
    assert tenant.api.post(f"/api/v1/api-keys/{old['id']}/rotate", json={}).status_code == 404


def test_rotation_without_grace_revokes_at_once_and_is_admin_only_in_one_tenant(tenant, other_tenant):
    old = tenant.api.post("/api/v1/api-keys", json={"name": "k"}).get_json()
    agent = tenant.key_for(tenant.user("agent"))
    assert agent.post(f"/api/v1/api-keys/{old['id']}/rotate", json={}).status_code == 403
    assert other_tenant.api.post(f"/api/v1/api-keys/{old['id']}/rotate", json={}).status_code == 404
    new = tenant.api.post(f"/api/v1/api-keys/{old['id']}/rotate", json={}).get_json()
    assert ApiClient(tenant.api.client, old["key"]).get("/api/v1/users").status_code == 401
    assert ApiClient(tenant.api.client, new["key"]).get("/api/v1/users").status_code == 200
    for grace in (-1, 7 * 24 * 3600 + 1, "60", 1.5):
        resp = tenant.api.post(f"/api/v1/api-keys/{new['id']}/rotate", json={"grace_seconds": grace})
        assert resp.status_code == 422, grace


def test_no_table_holds_a_key(app, tenant):
    created = tenant.api.post("/api/v1/api-keys", json={"name": "secret"}).get_json()
    ApiClient(tenant.api.client, created["key"]).get("/api/v1/users")
    secret = created["key"][16:]  # past the prefix and lookup id, which are not secret
    with app.app_context():
        # The shared schemas and this tenant's: the suite's other tenants hold thousands of tables, and
        # reading them all took half a minute.
        schema = active_tenant(tenant.slug).schema_name
        tables = db.session.execute(sa.text(
            "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE' "
            "and table_schema not in ('pg_catalog', 'information_schema') "
            "and (table_schema = :schema or table_schema !~ '^(tenant|moved)_')"), {"schema": schema}).all()
        assert {s for s, _ in tables} >= {schema, "public"}
        for schema, table in tables:
            dump = db.session.execute(sa.text(f'select coalesce(string_agg(t::text, \'|\'), \'\') '
                                              f'from "{schema}"."{table}" t')).scalar_one()
            assert secret not in dump and tenant.key[16:] not in dump, (schema, table)
            db.session.rollback()  # one table's lock at a time: the suite's tenants hold thousands of tables
