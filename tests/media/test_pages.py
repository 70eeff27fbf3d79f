"""Files on the ticket page: shown under their message with their scan state, downloaded through the
page by whoever may see them, and never shown to a requester when they belong to an internal note.
"""

from __future__ import annotations

import re

import pytest

from tests.helpers import post_message
from tests.media import samples
from tests.ui.conftest import ARTIFACTS, make_help_desk


@pytest.fixture
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def desk(tenant):
    return make_help_desk(tenant)


@pytest.fixture
def signed_in(app):
    def sign_in(person):
        client = app.test_client()
        assert client.post(f"/t/{person.tenant.slug}/login",
                           data={"email": person.email, "password": person.password}).status_code == 302
        return client

    return sign_in


def send_with_file(desk, person, ticket, upload, data: bytes, filename: str, internal: bool = False) -> dict:
    key = desk.tenant.key_for(person.user)
    uploaded = upload(key, ticket["id"], data, filename)
    assert uploaded.status_code == 202, uploaded.get_json()
    message = post_message(key, ticket["id"], body=f"see {filename}", internal=internal,
                           attachment_ids=[uploaded.get_json()["id"]])
    assert message.status_code == 201, message.get_json()
    return uploaded.get_json()


def test_a_file_shows_its_scan_state_and_downloads_once_clean(desk, upload, run_scans, signed_in):
    ticket = desk.ticket_for(desk.requester)
    image = send_with_file(desk, desk.requester, ticket, upload, samples.png(), "shot.png")
    requester = signed_in(desk.requester)
    page = requester.get(f"/t/{desk.slug}/tickets/{ticket['number']}").data.decode()
    assert re.search(rf'id="a-{image["id"]}"[^>]*data-status="pending"', page)
    assert "scanning" in page and f'href="/t/{desk.slug}/attachments/{image["id"]}"' not in page
    early = requester.get(f"/t/{desk.slug}/attachments/{image['id']}")
    assert early.status_code == 409 and b"still being scanned" in early.data

    run_scans(desk.tenant)
    page = requester.get(f"/t/{desk.slug}/tickets/{ticket['number']}").data.decode()
    assert f'<a class="file-name" href="/t/{desk.slug}/attachments/{image["id"]}">shot.png</a>' in page
    assert f'src="/t/{desk.slug}/attachments/{image["id"]}/thumbnail"' in page
    served = requester.get(f"/t/{desk.slug}/attachments/{image['id']}")
    assert served.status_code == 200 and served.data.startswith(b"\x89PNG")
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert served.headers["Cache-Control"] == "private, no-store"  # gone from the browser at sign-out
    thumbnail = requester.get(f"/t/{desk.slug}/attachments/{image['id']}/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.headers["Cache-Control"] == "private, no-store"
    agent = signed_in(desk.agent)
    assert agent.get(f"/t/{desk.slug}/attachments/{image['id']}").status_code == 200
    size = len(served.data)
    part = agent.get(f"/t/{desk.slug}/attachments/{image['id']}", headers={"Range": "bytes=0-7"})
    assert part.status_code == 206 and part.data == served.data[:8]
    past = agent.get(f"/t/{desk.slug}/attachments/{image['id']}", headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["Content-Range"] == f"bytes */{size}"
    wrong = agent.put(f"/t/{desk.slug}/attachments/{image['id']}")
    assert wrong.status_code == 405 and "GET" in wrong.headers["Allow"]


def test_nobody_else_downloads_a_file_and_signed_out_users_sign_in(desk, upload, run_scans, signed_in, app,
                                                                  make_tenant):
    ticket = desk.ticket_for(desk.requester)
    doc = send_with_file(desk, desk.requester, ticket, upload, samples.pdf(), "invoice.pdf")
    run_scans(desk.tenant)
    path = f"/t/{desk.slug}/attachments/{doc['id']}"
    assert signed_in(desk.other_requester).get(path).status_code == 404
    other = make_help_desk(make_tenant())
    assert signed_in(other.agent).get(f"/t/{other.slug}/attachments/{doc['id']}").status_code == 404
    assert signed_in(other.agent).get(path).status_code == 302  # a session of another tenant opens nothing here
    signed_out = app.test_client().get(path)
    assert signed_out.status_code == 302 and "/login" in signed_out.headers["Location"]


def test_an_internal_notes_file_never_reaches_the_requester(desk, upload, run_scans, signed_in):
    ticket = desk.ticket_for(desk.requester)
    secret = send_with_file(desk, desk.agent, ticket, upload, samples.text(), "notes.txt", internal=True)
    run_scans(desk.tenant)
    requester = signed_in(desk.requester)
    page = requester.get(f"/t/{desk.slug}/tickets/{ticket['number']}").data.decode()
    assert "notes.txt" not in page and secret["id"] not in page
    assert requester.get(f"/t/{desk.slug}/attachments/{secret['id']}").status_code == 404
    staff_page = signed_in(desk.agent2).get(f"/t/{desk.slug}/tickets/{ticket['number']}").data.decode()
    assert "notes.txt" in staff_page


def test_a_refused_file_says_so_and_is_not_served(desk, upload, run_scans, signed_in):
    ticket = desk.ticket_for(desk.requester)
    virus = send_with_file(desk, desk.requester, ticket, upload, samples.eicar(), "readme.txt")
    run_scans(desk.tenant)
    requester = signed_in(desk.requester)
    page = requester.get(f"/t/{desk.slug}/tickets/{ticket['number']}").data.decode()
    assert re.search(rf'id="a-{virus["id"]}"[^>]*data-status="infected"', page)
    assert f'href="/t/{desk.slug}/attachments/{virus["id"]}"' not in page
    assert requester.get(f"/t/{desk.slug}/attachments/{virus['id']}").status_code == 410


def test_files_appear_and_clear_live_on_the_open_page(live_server, browser, desk, upload, run_scans, artifacts):
    from playwright.sync_api import expect

    from tests.servers import DESKTOP
    from tests.ui.conftest import browser_sign_in

    ticket = desk.ticket_for(desk.requester)
    page = browser.new_context(**DESKTOP).new_page()
    browser_sign_in(page, live_server.url, desk.requester)
    page.goto(f"{live_server.url}/t/{desk.slug}/tickets/{ticket['number']}")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=15_000)
    guide = send_with_file(desk, desk.agent, ticket, upload, samples.pdf(), "guide.pdf")
    send_with_file(desk, desk.agent, ticket, upload, samples.text(), "private.txt", internal=True)
    item = page.locator(f"#a-{guide['id']}")
    expect(item).to_have_attribute("data-status", "pending", timeout=15_000)
    expect(item).to_contain_text("scanning")
    run_scans(desk.tenant)
    expect(item).to_have_attribute("data-status", "clean", timeout=15_000)
    expect(item.locator("a.file-name")).to_have_attribute("href", f"/t/{desk.slug}/attachments/{guide['id']}")
    page.screenshot(path=str(artifacts / "requester-ticket-with-file-1280.png"), full_page=True)
    assert "private.txt" not in page.content()
    page.context.close()
