"""An API body sent as anything but JSON is refused (415) and changes nothing.

Read as "no JSON", it used to reach views whose body is optional (every PATCH, `close`, `rotate`)
as "no changes": `requests.patch(url, data=json.dumps(...))` (no Content-Type), `curl -d`
(form-urlencoded) or `text/plain` got 200 with the change dropped; a webhook "disabled" kept
delivering, and a key "rotated with a grace period" lost its old key at once.
"""

from __future__ import annotations

import io
import json
import re
import uuid

import pytest

from tests.helpers import new_ticket

NOT_JSON = [None, "text/plain", "application/x-www-form-urlencoded"]


def _send(api, method, path, body, content_type):
    headers = api._headers(None)
    if content_type:
        headers["Content-Type"] = content_type
    return getattr(api.client, method)(path, data=json.dumps(body), headers=headers)


@pytest.mark.parametrize("content_type", NOT_JSON)
def test_a_ticket_patch_that_is_not_json_is_refused_not_dropped(tenant, content_type):
    ticket = new_ticket(tenant.api, "Printer on fire")
    resp = _send(tenant.api, "patch", f"/api/v1/tickets/{ticket['id']}", {"priority": "urgent"}, content_type)
    now = tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()
    assert not (resp.status_code < 300 and now["priority"] != "urgent"), (
        f"{resp.status_code} for a PATCH whose change was dropped (priority still {now['priority']})")
    assert resp.status_code in (400, 415)


@pytest.mark.parametrize("content_type", NOT_JSON)
def test_disabling_a_webhook_without_a_json_content_type_does_not_claim_success(tenant, content_type):
    hook = tenant.api.post("/api/v1/webhooks", json={"url": "https://hooks.example.com/a",
                                                     "events": ["ticket.created"]}).get_json()
    resp = _send(tenant.api, "patch", f"/api/v1/webhooks/{hook['id']}", {"enabled": False}, content_type)
    now = tenant.api.get(f"/api/v1/webhooks/{hook['id']}").get_json()
    assert not (resp.status_code < 300 and now["enabled"]), (
        f"{resp.status_code} for 'disable this webhook', and it is still enabled")


@pytest.mark.parametrize("content_type", NOT_JSON)
def test_a_rotation_with_a_grace_period_never_revokes_the_old_key_at_once(tenant, content_type):
    created = tenant.api.post("/api/v1/api-keys", json={"name": "integration"}).get_json()
    resp = _send(tenant.api, "post", f"/api/v1/api-keys/{created['id']}/rotate", {"grace_seconds": 3600},
                 content_type)
    old_key_works = tenant.api.client.get(
        "/api/v1/tickets", headers={"Authorization": f"Bearer {created['key']}"}).status_code == 200
    assert not (resp.status_code < 300 and not old_key_works), (
        f"{resp.status_code} for a rotation with a one-hour grace, and the old key was revoked at once")


@pytest.mark.parametrize("content_type", NOT_JSON)
def test_every_operation_taking_json_refuses_other_bodies(tenant, client, content_type):
    """The class of input: every documented operation with a JSON body, by the document."""
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    operations = [(method, path) for path, ops in paths.items() for method, op in ops.items()
                  if isinstance(op, dict) and "application/json" in op.get("requestBody", {}).get("content", {})]
    assert len(operations) >= 15
    for method, path in operations:
        url = re.sub(r"\{[^}]+\}", lambda m: "1" if m.group() == "{number}" else str(uuid.uuid4()), path)
        resp = _send(tenant.api, method, url, {"title": "x"}, content_type)
        assert resp.status_code == 415, (method, path, resp.status_code)
        assert resp.get_json()["code"] and "JSON" in resp.get_json()["message"]
        assert "415" in paths[path][method]["responses"], (method, path)


def test_an_upload_still_takes_multipart_and_a_bodiless_post_any_type(tenant):
    ticket = new_ticket(tenant.api, "Printer on fire")
    headers = tenant.api._headers(None)
    upload = tenant.api.client.post(f"/api/v1/tickets/{ticket['id']}/attachments", headers=headers,
                                    data={"file": (io.BytesIO(b"hello"), "note.txt", "text/plain")},
                                    content_type="multipart/form-data")
    assert upload.status_code == 202, upload.get_json()
    closed = tenant.api.client.post(f"/api/v1/tickets/{ticket['id']}/close",
                                    headers={**headers, "Content-Type": "text/plain"})
    assert closed.status_code == 200
