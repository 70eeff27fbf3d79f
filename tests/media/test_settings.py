"""An admin narrows the allowed types and the size limit per organization; never beyond the instance's."""

from __future__ import annotations

import sqlalchemy as sa

from app.audit import AuditEntry
from tests.helpers import new_ticket
from tests.media import samples

MiB = 1024 * 1024


def test_an_admin_narrows_the_types_and_the_size_limit(tenant, other_tenant, upload, in_tenant):
    resp = tenant.api.patch("/api/v1/media/settings", json={"allowed_types": ["image/png", "application/pdf"],
                                                            "max_size": 2 * MiB})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["allowed_types"] == ["image/png", "application/pdf"]
    assert resp.get_json()["max_size"] == 2 * MiB
    types = tenant.api.get("/api/v1/media/types").get_json()
    assert [t["content_type"] for t in types["types"]] == ["image/png", "application/pdf"]
    assert types["max_size"] == 2 * MiB and types["instance_max_size"] == 25 * MiB
    ticket = new_ticket(tenant.api)
    assert upload(tenant.api, ticket["id"], samples.text(), "a.txt").status_code == 415
    refused = upload(tenant.api, ticket["id"], samples.text(), "notes", "application/octet-stream")
    assert refused.status_code == 415 and "its content is text/plain" in refused.get_json()["message"]
    assert upload(tenant.api, ticket["id"], samples.png(), "a.png").status_code == 202
    # the other organization keeps the instance's settings
    assert len(other_tenant.api.get("/api/v1/media/types").get_json()["types"]) == 10
    with in_tenant(tenant) as session:
        entry = session.execute(sa.select(AuditEntry).where(AuditEntry.entity == "media_settings")).scalar_one()
        assert entry.before == {"allowed_types": None, "max_size": None}
        assert entry.after["max_size"] == 2 * MiB


def test_null_restores_the_instances_settings(tenant, media):
    tenant.api.patch("/api/v1/media/settings", json={"allowed_types": ["image/png"], "max_size": 1000})
    resp = tenant.api.patch("/api/v1/media/settings", json={"allowed_types": None, "max_size": None})
    assert resp.get_json()["allowed_types"] is None and resp.get_json()["max_size"] is None
    types = tenant.api.get("/api/v1/media/types").get_json()
    assert len(types["types"]) == 10 and types["max_size"] == 25 * MiB


def test_an_empty_list_refuses_every_upload(tenant, upload):
    assert tenant.api.patch("/api/v1/media/settings", json={"allowed_types": []}).status_code == 200
    ticket = new_ticket(tenant.api)
    resp = upload(tenant.api, ticket["id"], samples.png(), "a.png")
    assert resp.status_code == 415 and "Allowed: none" in resp.get_json()["message"]


def test_settings_beyond_the_instance_are_422_and_change_nothing(tenant, media):
    for body in ({"allowed_types": ["image/png", "video/mp4"]}, {"max_size": 26 * MiB}, {"max_size": 0},
                 {"max_size": "big"}, {"allowed_types": "image/png"}, {"surprise": 1}):
        resp = tenant.api.patch("/api/v1/media/settings", json=body)
        assert resp.status_code == 422, (body, resp.get_json())
        assert resp.get_json()["errors"]
    assert tenant.api.get("/api/v1/media/settings").get_json()["allowed_types"] is None
