"""Uploads from the pages: the script's one-file route and the forms themselves (no script), with the
API's checks (tenant, role, ticket, internal files, size 413, type 415) and CSRF checked by the view,
while the body streams to storage instead of being parsed whole by a form hook first."""

from __future__ import annotations

import io
import re

import pytest

from app import create_app
from tests.helpers import app_config
from tests.media import samples
from tests.ui.conftest import make_help_desk


@pytest.fixture
def desk(tenant, media):
    return make_help_desk(tenant)


@pytest.fixture
def signed_in(app):
    def sign_in(person, client=None):
        client = client or app.test_client()
        assert client.post(f"/t/{person.tenant.slug}/login",
                           data={"email": person.email, "password": person.password}).status_code == 302
        return client

    return sign_in


def page_upload(client, desk, number, data: bytes, filename: str, headers: dict | None = None):
    return client.post(f"/t/{desk.slug}/tickets/{number}/attachments", data={"file": (io.BytesIO(data), filename)},
                       content_type="multipart/form-data", headers={"Accept": "application/json", **(headers or {})})


def attachments_of(desk, ticket) -> list[dict]:
    messages = desk.tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]
    return [a for m in messages for a in m["attachments"]]


def test_a_requester_uploads_to_their_ticket_and_sends_it_with_a_plain_reply(desk, signed_in, run_scans):
    ticket = desk.ticket_for(desk.requester)
    client = signed_in(desk.requester)
    uploaded = page_upload(client, desk, ticket["number"], samples.png(), "shot.png")
    assert uploaded.status_code == 202, uploaded.get_json()
    body = uploaded.get_json()
    assert (body["filename"], body["status"], body["internal"]) == ("shot.png", "pending", False)
    sent = client.post(f"/t/{desk.slug}/tickets/{ticket['number']}/messages",
                       data={"body": "here it is", "attachment_ids": body["id"]})
    assert sent.status_code == 302
    assert [a["id"] for a in attachments_of(desk, ticket)] == [body["id"]]
    run_scans(desk.tenant)
    assert client.get(f"/t/{desk.slug}/attachments/{body['id']}").status_code == 200


def test_nobody_uploads_to_a_ticket_they_cannot_see(desk, signed_in, make_tenant):
    ticket = desk.ticket_for(desk.requester)
    other = signed_in(desk.other_requester)
    assert page_upload(other, desk, ticket["number"], samples.png(), "x.png").status_code == 404
    stranger_desk = make_help_desk(make_tenant())
    stranger = signed_in(stranger_desk.admin)
    # another tenant's admin: their session is not one of this tenant's, so they are sent to sign in
    refused = page_upload(stranger, desk, ticket["number"], samples.png(), "x.png")
    assert refused.status_code in (302, 401, 404)
    # ... and under their own tenant the number names their own ticket, if any: never this one
    assert page_upload(stranger, stranger_desk, ticket["number"], samples.png(), "x.png").status_code == 404
    signed_out = page_upload(desk.tenant.api.client.application.test_client(), desk, ticket["number"],
                             samples.png(), "x.png")
    assert signed_out.status_code == 302 and "/login" in signed_out.headers["Location"]


def test_an_agents_upload_and_internal_note_files_stay_hidden_from_the_requester(desk, signed_in, run_scans):
    ticket = desk.ticket_for(desk.requester)
    agent = signed_in(desk.agent)
    draft = page_upload(agent, desk, ticket["number"], samples.pdf(), "notes.pdf").get_json()
    assert draft["internal"] is True  # not sent yet: staff only
    assert agent.post(f"/t/{desk.slug}/tickets/{ticket['number']}/messages",
                      data={"body": "for us", "internal": "on", "attachment_ids": draft["id"]}).status_code == 302
    run_scans(desk.tenant)
    requester = signed_in(desk.requester)
    assert requester.get(f"/t/{desk.slug}/attachments/{draft['id']}").status_code == 404
    page = requester.get(f"/t/{desk.slug}/tickets/{ticket['number']}").data.decode()
    assert "notes.pdf" not in page and draft["id"] not in page
    assert agent.get(f"/t/{desk.slug}/attachments/{draft['id']}").status_code == 200


def test_the_size_limit_and_the_type_are_refused_beside_the_field(desk, signed_in):
    ticket = desk.ticket_for(desk.requester)
    client = signed_in(desk.requester)
    exe = page_upload(client, desk, ticket["number"], b"MZ" + b"\0" * 100, "setup.exe")
    assert exe.status_code == 415 and "setup.exe is not an allowed type here" in exe.get_json()["errors"]["file"][0]
    elf = page_upload(client, desk, ticket["number"], samples.elf(), "notes.txt")
    assert elf.status_code == 415 and "its content is" in elf.get_json()["message"]
    assert desk.tenant.api.patch("/api/v1/media/settings", json={"max_size": 1000}).status_code == 200
    big = page_upload(client, desk, ticket["number"], samples.text(200), "big.txt")
    assert big.status_code == 413
    assert big.get_json()["errors"]["file"] == ["The file is larger than the limit of 1000 bytes."]
    assert attachments_of(desk, ticket) == []
    page = client.get(f"/t/{desk.slug}/tickets/{ticket['number']}").data.decode()
    assert 'data-max-size="1000"' in page and "at most 1000 bytes each" in page


def test_without_script_a_new_ticket_carries_its_files_in_its_first_message(desk, signed_in, app):
    client = signed_in(desk.requester)
    big = samples.text(40000)  # over the app's 1 MiB form limit: a form hook parsing it would answer 413
    assert len(big) > app.config["MAX_CONTENT_LENGTH"]
    response = client.post(f"/t/{desk.slug}/tickets/new", content_type="multipart/form-data", data={
        "title": "Scanner jams", "description": "see files", "priority": "high",
        "file": [(io.BytesIO(samples.png()), "shot.png"), (io.BytesIO(big), "log.txt"), (io.BytesIO(b""), "")]})
    assert response.status_code == 302, response.data[:2000]
    number = int(re.search(r"/tickets/(\d+)", response.headers["Location"]).group(1))
    ticket = desk.tenant.api.get(f"/api/v1/tickets/by-number/{number}").get_json()
    assert (ticket["title"], ticket["priority"]) == ("Scanner jams", "high")
    files = attachments_of(desk, ticket)
    assert [(a["filename"], a["size"], a["status"]) for a in files] == [
        ("shot.png", len(samples.png()), "pending"), ("log.txt", len(big), "pending")]
    page = client.get(f"/t/{desk.slug}/tickets/{number}").data.decode()
    assert "Attached when the ticket was opened: shot.png, log.txt" in page


def test_without_script_a_refused_file_opens_nothing_and_is_said_beside_the_field(desk, signed_in, stored, app,
                                                                                 in_tenant):
    client = signed_in(desk.requester)
    before = desk.tenant.api.get("/api/v1/tickets").get_json()["items"]
    response = client.post(f"/t/{desk.slug}/tickets/new", content_type="multipart/form-data", data={
        "title": "Keep this title", "file": [(io.BytesIO(samples.png()), "fine.png"),
                                             (io.BytesIO(samples.elf()), "tool.txt")]})
    assert response.status_code == 415
    page = response.data.decode()
    assert re.search(r'<p class="field-error" id="file-error">tool.txt is not an allowed type here', page)
    assert 'value="Keep this title"' in page
    assert desk.tenant.api.get("/api/v1/tickets").get_json()["items"] == before
    with in_tenant(desk.tenant) as session:
        from app.media.models import Attachment

        assert session.query(Attachment).count() == 0
    media_root = app.config["MEDIA_LOCAL_DIR"]
    import pathlib

    assert not [p for p in pathlib.Path(media_root).rglob("original") if desk.tenant.slug in str(p)]


def test_without_script_a_reply_carries_its_files_and_an_agent_note_keeps_them_internal(desk, signed_in):
    ticket = desk.ticket_for(desk.requester)
    agent = signed_in(desk.agent)
    response = agent.post(f"/t/{desk.slug}/tickets/{ticket['number']}/messages", content_type="multipart/form-data",
                          data={"body": "internal log", "internal": "on",
                                "file": (io.BytesIO(samples.pdf()), "trace.pdf")})
    assert response.status_code == 302
    files = attachments_of(desk, ticket)
    assert [(a["filename"], a["internal"]) for a in files] == [("trace.pdf", True)]
    requester_view = desk.tenant.key_for(desk.requester.user).get(f"/api/v1/tickets/{ticket['id']}/messages")
    assert requester_view.get_json()["items"] == []


def signed_in_with_csrf(services, desk):
    """Return a client of an app that checks CSRF tokens, signed in as the requester, with a ticket of
    theirs and the token its page carries."""
    strict_app = create_app(app_config(services, WTF_CSRF_ENABLED=True, MEDIA_BACKEND="local",
                                       CLAMD_SOCKET="", MEDIA_ANTIVIRUS="off", OUTBOX_FAST_PATH=False))
    client = strict_app.test_client()
    login = client.get(f"/t/{desk.slug}/login").data.decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login).group(1)
    assert client.post(f"/t/{desk.slug}/login", data={"email": desk.requester.email, "password": "password123",
                                                      "csrf_token": token}).status_code == 302
    ticket = desk.ticket_for(desk.requester)
    page = client.get(f"/t/{desk.slug}/tickets/{ticket['number']}").data.decode()
    return client, ticket, re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)


def test_csrf_on_uploads_comes_from_a_header_or_the_query_and_the_streamed_forms_field(services, desk):
    client, ticket, token = signed_in_with_csrf(services, desk)
    slug = desk.slug

    forged = page_upload(client, desk, ticket["number"], samples.png(), "a.png")
    assert forged.status_code == 400 and forged.get_json()["message"] == "The CSRF token is missing."
    wrong = page_upload(client, desk, ticket["number"], samples.png(), "a.png", headers={
        "X-CSRFToken": "nope", "Accept": "application/json"})
    assert wrong.status_code == 400
    by_header = page_upload(client, desk, ticket["number"], samples.png(), "a.png",
                            headers={"X-CSRFToken": token, "Accept": "application/json"})
    assert by_header.status_code == 202
    by_query = client.post(f"/t/{slug}/tickets/{ticket['number']}/attachments?csrf_token={token}",
                           data={"file": (io.BytesIO(samples.png()), "b.png")}, content_type="multipart/form-data")
    assert by_query.status_code == 202

    # The streamed forms: no token, nothing stored and nothing opened; the token first, files accepted.
    for path, fields in ((f"/tickets/{ticket['number']}/messages", {"body": "forged"}),
                         ("/tickets/new", {"title": "forged"})):
        refused = client.post(f"/t/{slug}{path}", content_type="multipart/form-data",
                              data={**fields, "file": (io.BytesIO(samples.png()), "c.png")})
        assert refused.status_code == 400 and b"The CSRF token is missing." in refused.data, path
    assert len(desk.tenant.api.get("/api/v1/tickets").get_json()["items"]) == 1
    assert attachments_of(desk, ticket) == []
    sent = client.post(f"/t/{slug}/tickets/{ticket['number']}/messages", content_type="multipart/form-data",
                       data={"csrf_token": token, "body": "real", "file": (io.BytesIO(samples.png()), "d.png")})
    assert sent.status_code == 302
    assert [a["filename"] for a in attachments_of(desk, ticket)] == ["d.png"]


def delete_on_page(client, desk, number, attachment_id: str, script: bool = True):
    return client.post(f"/t/{desk.slug}/tickets/{number}/attachments/{attachment_id}/delete",
                       headers={"Accept": "application/json"} if script else {})


def test_a_file_is_deleted_from_the_page_by_its_uploader_or_an_admin_only(desk, signed_in):
    ticket = desk.ticket_for(desk.requester)
    requester, agent, admin = signed_in(desk.requester), signed_in(desk.agent), signed_in(desk.admin)
    # The composer's Remove: an upload not sent yet is deleted (by script, which asks for JSON).
    draft = page_upload(agent, desk, ticket["number"], samples.pdf(), "draft.pdf").get_json()
    assert delete_on_page(agent, desk, ticket["number"], draft["id"]).status_code == 204
    assert desk.tenant.api.get(f"/api/v1/attachments/{draft['id']}").status_code == 404

    mine = page_upload(requester, desk, ticket["number"], samples.pdf(), "mine.pdf").get_json()
    assert requester.post(f"/t/{desk.slug}/tickets/{ticket['number']}/messages",
                          data={"body": "see", "attachment_ids": mine["id"]}).status_code == 302
    page = f"/t/{desk.slug}/tickets/{ticket['number']}"
    button = 'aria-label="Delete mine.pdf"'
    assert button in requester.get(page).data.decode() and button in admin.get(page).data.decode()
    assert button not in agent.get(page).data.decode()

    refused = delete_on_page(agent, desk, ticket["number"], mine["id"])
    assert refused.status_code == 403 and refused.get_json()["message"].startswith("Only the person who uploaded")
    refused = delete_on_page(agent, desk, ticket["number"], mine["id"], script=False)
    assert refused.status_code == 403 and b"Only the person who uploaded a file" in refused.data
    other = desk.ticket_for(desk.requester, "Another")
    assert delete_on_page(requester, desk, other["number"], mine["id"]).status_code == 404  # not that ticket's
    assert [a["id"] for a in attachments_of(desk, ticket)] == [mine["id"]]

    # Without script: the form comes back to the ticket, which says so.
    done = delete_on_page(requester, desk, ticket["number"], mine["id"], script=False)
    assert done.status_code == 302 and done.headers["Location"].endswith(page)
    shown = requester.get(page).data.decode()
    assert "mine.pdf is deleted." in shown and button not in shown
    assert attachments_of(desk, ticket) == []
    assert delete_on_page(admin, desk, ticket["number"], mine["id"]).status_code == 404


def test_a_files_delete_needs_the_csrf_token(services, desk):
    client, ticket, token = signed_in_with_csrf(services, desk)
    draft = page_upload(client, desk, ticket["number"], samples.pdf(), "draft.pdf",
                        headers={"X-CSRFToken": token}).get_json()
    forged = delete_on_page(client, desk, ticket["number"], draft["id"])
    assert forged.status_code == 400
    assert desk.tenant.api.get(f"/api/v1/attachments/{draft['id']}").status_code == 200
    sent = client.post(f"/t/{desk.slug}/tickets/{ticket['number']}/attachments/{draft['id']}/delete",
                       headers={"X-CSRFToken": token, "Accept": "application/json"})
    assert sent.status_code == 204
