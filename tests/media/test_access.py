"""Who may see and fetch an attachment: only the owning tenant, requesters only on their own tickets
and never internal notes' files or staff uploads not yet sent; everything else is 404."""

from __future__ import annotations

import pytest

from tests.helpers import get_attachment, new_ticket, post_message
from tests.media import samples


@pytest.fixture
def other_image(other_tenant, upload, run_scans) -> dict:
    """A clean image (so every endpoint has something to serve) in another tenant."""
    ticket = new_ticket(other_tenant.api)
    body = upload(other_tenant.api, ticket["id"], samples.png(), "b.png").get_json()
    run_scans(other_tenant)
    assert get_attachment(other_tenant.api, body["id"])["status"] == "clean"
    return {"ticket": ticket["id"], "attachment": body["id"]}


READS = ["/api/v1/attachments/{attachment}", "/api/v1/attachments/{attachment}/download",
         "/api/v1/attachments/{attachment}/thumbnail"]


@pytest.mark.parametrize("path", READS)
def test_another_tenants_attachment_is_404(tenant, other_tenant, other_image, path):
    resp = tenant.api.get(path.format(**other_image))
    assert resp.status_code == 404 and resp.get_json()["code"] == 404
    assert other_tenant.api.get(path.format(**other_image)).status_code == 200


def test_uploading_to_another_tenants_ticket_is_404(tenant, other_tenant, other_image, upload):
    used = [t.api.get("/api/v1/media/types").get_json()["used_bytes"] for t in (tenant, other_tenant)]
    resp = upload(tenant.api, other_image["ticket"], samples.text(), "a.txt")
    assert resp.status_code == 404 and resp.get_json()["code"] == 404
    assert [t.api.get("/api/v1/media/types").get_json()["used_bytes"] for t in (tenant, other_tenant)] == used


def test_sending_another_tenants_attachment_in_a_message_is_422(tenant, other_tenant, other_image):
    ticket = new_ticket(tenant.api)
    resp = post_message(tenant.api, ticket["id"], attachment_ids=[other_image["attachment"]])
    assert resp.status_code == 422 and "attachment_ids" in resp.get_json()["errors"]
    assert get_attachment(other_tenant.api, other_image["attachment"])["message_id"] is None


@pytest.fixture
def requesters(tenant):
    """Two requesters of the tenant with their own keys, and a ticket of the first."""
    ana, bo = tenant.user("requester", name="Ana"), tenant.user("requester", name="Bo")
    ana_api, bo_api = tenant.key_for(ana), tenant.key_for(bo)
    return {"ana": ana_api, "bo": bo_api, "ticket": new_ticket(ana_api, "Ana's printer")}


def test_another_requesters_attachment_is_404_everywhere(tenant, requesters, upload, run_scans):
    ana, bo, ticket = requesters["ana"], requesters["bo"], requesters["ticket"]
    mine = upload(ana, ticket["id"], samples.png(), "mine.png").get_json()
    assert post_message(ana, ticket["id"], attachment_ids=[mine["id"]]).status_code == 201
    run_scans(tenant)
    for path in READS:
        url = path.format(attachment=mine["id"])
        assert bo.get(url).status_code == 404, url
        assert ana.get(url).status_code == 200, url
        assert tenant.api.get(url).status_code == 200, url
    assert upload(bo, ticket["id"], samples.text(), "b.txt").status_code == 404
    assert post_message(bo, ticket["id"], attachment_ids=[mine["id"]]).status_code == 404


def test_internal_notes_files_and_unsent_staff_uploads_are_hidden_from_the_requester(tenant, requesters, upload,
                                                                                     run_scans):
    ana, ticket = requesters["ana"], requesters["ticket"]
    agent = tenant.key_for(tenant.user("agent"))
    note_file = upload(agent, ticket["id"], samples.pdf(), "internal.pdf").get_json()
    draft = upload(agent, ticket["id"], samples.pdf(), "draft.pdf").get_json()
    public = upload(agent, ticket["id"], samples.pdf(), "answer.pdf").get_json()
    assert note_file["internal"] and draft["internal"] and public["internal"]
    note = post_message(agent, ticket["id"], body="between us", internal=True, attachment_ids=[note_file["id"]])
    reply = post_message(agent, ticket["id"], body="here you go", attachment_ids=[public["id"]])
    assert note.status_code == reply.status_code == 201
    run_scans(tenant)
    assert not get_attachment(agent, public["id"])["internal"]
    for hidden in (note_file, draft):
        for path in READS:
            assert ana.get(path.format(attachment=hidden["id"])).status_code == 404
        assert agent.get(f"/api/v1/attachments/{hidden['id']}/download").status_code == 200
    assert ana.get(f"/api/v1/attachments/{public['id']}/download").status_code == 200
    listed = ana.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]
    assert [[a["id"] for a in m["attachments"]] for m in listed] == [[public["id"]]]


def test_a_deleted_messages_files_are_hidden_from_the_requester(tenant, requesters, upload, run_scans):
    ana, ticket = requesters["ana"], requesters["ticket"]
    mine = upload(ana, ticket["id"], samples.text(), "oops.txt").get_json()
    message = post_message(ana, ticket["id"], attachment_ids=[mine["id"]]).get_json()
    run_scans(tenant)
    assert ana.get(f"/api/v1/attachments/{mine['id']}").status_code == 200
    assert ana.delete(f"/api/v1/tickets/{ticket['id']}/messages/{message['id']}").status_code == 204
    assert ana.get(f"/api/v1/attachments/{mine['id']}").status_code == 404
    assert tenant.api.get(f"/api/v1/attachments/{mine['id']}").status_code == 200


def test_a_requester_sees_their_own_unsent_upload(tenant, requesters, upload):
    ana, ticket = requesters["ana"], requesters["ticket"]
    mine = upload(ana, ticket["id"], samples.text(), "a.txt").get_json()
    assert mine["internal"] is False
    assert ana.get(f"/api/v1/attachments/{mine['id']}").status_code == 200


@pytest.mark.parametrize("method,path,body", [
    ("get", "/api/v1/media/settings", None),
    ("patch", "/api/v1/media/settings", {"max_size": 10}),
])
@pytest.mark.parametrize("role", ["agent", "requester"])
def test_media_settings_are_for_admins(tenant, media, method, path, body, role):
    api = tenant.key_for(tenant.user(role))
    kwargs = {"json": body} if body is not None else {}
    assert getattr(api, method)(path, **kwargs).status_code == 403
    assert api.get("/api/v1/media/types").status_code == 200


def test_an_unknown_attachment_id_is_404_and_a_malformed_one_too(tenant, media):
    assert tenant.api.get("/api/v1/attachments/00000000-0000-0000-0000-000000000000").status_code == 404
    assert tenant.api.get("/api/v1/attachments/not-a-uuid/download").status_code == 404


def test_without_a_key_nothing_is_served(client, tenant, upload, run_scans):
    ticket = new_ticket(tenant.api)
    body = upload(tenant.api, ticket["id"], samples.png(), "a.png").get_json()
    run_scans(tenant)
    for path in READS:
        assert client.get(path.format(attachment=body["id"])).status_code == 401
    assert client.post(f"/api/v1/tickets/{ticket['id']}/attachments", data=b"x").status_code == 401
