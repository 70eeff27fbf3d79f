"""Files from the pages in Debian's Chromium, against the app in gunicorn with a real worker on the
assignment and media queues (clamd scanning): a requester attaches an image to a new ticket, an
agent attaches a PDF to a reply, both turn clean live; a refused type and an oversize file say so
beside the field. Screenshots under tests/artifacts/.
"""

from __future__ import annotations

import re
import signal

import pytest
from playwright.sync_api import expect

from app.embedded import stop_process
from tests.helpers import wait_until
from tests.media import samples
from tests.servers import DESKTOP, PHONE, start_relay, start_worker
from tests.ui.conftest import browser_sign_in, open_ticket

LIVE = 30_000  # ms: the worker scans with clamd; a generous hang guard on a busy machine


@pytest.fixture(scope="module")
def media_worker(services, tmp_path_factory, clamd_socket):
    """Run a real `flask worker` on the media and assignment queues, scanning with the test clamd, and the
    outbox relay, which hands on a scan the upload's own hand-on left to it. Without one, such a scan
    waited for another module's `run_jobs` to pass it on. The relay hands on every tenant's rows the
    suite left, so media comes first: a scan waited behind other tenants' assignments."""
    folder = tmp_path_factory.mktemp("upload-worker")
    procs = [start_worker(services.database_url, services.redis_url, folder, "upload-worker",
                          queues="media,assignment", MEDIA_LOCAL_DIR=services.media_dir, CLAMD_SOCKET=clamd_socket),
             start_relay(services.database_url, services.redis_url, folder)]
    yield
    for proc in procs:
        stop_process(proc, signal.SIGTERM, 10)


pytestmark = pytest.mark.usefixtures("media_worker")


def files(tmp_path, **named: bytes) -> list[str]:
    paths = []
    for name, data in named.items():
        path = tmp_path / name.replace("__", ".")
        path.write_bytes(data)
        paths.append(str(path))
    return paths


def test_a_requester_attaches_an_image_to_a_new_ticket(live_server, browser, help_desk, keep, tmp_path):
    base, hd = live_server.url, help_desk
    page = browser.new_context(**DESKTOP).new_page()
    browser_sign_in(page, base, hd.requester)
    page.goto(f"{base}/t/{hd.slug}/tickets/new")
    page.get_by_label("title").fill("Screen flickers")
    page.get_by_label("description").fill("See the photo.")
    chosen = files(tmp_path, screen__png=samples.png(640, 480), extra__pdf=samples.pdf())
    page.get_by_label("file", exact=True).set_input_files(chosen)
    items = page.locator(".upload-item")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text("screen.png")
    expect(items.nth(0).locator(".badge")).to_have_text("ready to send")
    keep(page, "new-ticket-with-files-1280")
    page.get_by_role("button", name="Remove extra.pdf").click()  # removed before sending
    expect(items).to_have_count(1)
    page.get_by_label("title").fill("   ")  # refused by the server (blank), with the files kept
    page.get_by_role("button", name="Open ticket").click()
    title = page.get_by_label("title")
    expect(title).to_be_focused()  # where the person can act on it, and told why when it is read
    expect(title).to_have_attribute("aria-describedby", re.compile(r"\btitle-error\b"))
    expect(page.locator("#title-error")).to_have_text("This is required.")
    expect(items).to_have_count(1)
    title.fill("Screen flickers")
    page.get_by_role("button", name="Open ticket").click()
    page.wait_for_url(re.compile(r"/tickets/\d+$"))
    item = page.locator(".attachment", has_text="screen.png")
    expect(item).to_be_visible()
    expect(item.locator(".badge")).to_have_text("clean", timeout=LIVE)  # live, over the ticket's stream
    expect(item.locator("img.thumb")).to_be_visible()
    expect(page.locator(".attachment", has_text="extra.pdf")).to_have_count(0)
    first = page.locator("article.msg[data-seq='1']")
    expect(first).to_contain_text("Attached when the ticket was opened: screen.png")
    keep(page, "requester-new-ticket-file-clean-1280")
    page.context.close()


def test_an_agent_attaches_a_pdf_to_a_reply(live_server, browser, help_desk, keep, tmp_path):
    base, hd = live_server.url, help_desk
    ticket = hd.ticket_for(hd.requester, "Invoice missing")
    agent = open_ticket(browser, base, hd.agent, ticket)
    agent.get_by_label("file", exact=True).set_input_files(files(tmp_path, invoice__pdf=samples.pdf()))
    item = agent.locator(".upload-item", has_text="invoice.pdf")
    expect(item.locator(".badge")).to_have_text("clean", timeout=LIVE)  # uploaded at once, scanned, live
    keep(agent, "agent-composer-file-clean-1280")
    agent.get_by_label("body").fill("Here is the invoice.")
    agent.get_by_role("button", name="Send reply").click()
    sent = agent.locator("article.msg", has_text="Here is the invoice.")
    expect(sent).to_have_attribute("data-delivered", "true")
    expect(sent.locator(".attachment .badge")).to_have_text("clean")
    expect(sent.locator("a.file-name")).to_have_text("invoice.pdf")
    expect(agent.locator(".upload-item")).to_have_count(0)

    requester = browser.new_context(**PHONE).new_page()
    browser_sign_in(requester, base, hd.requester)
    requester.goto(f"{base}/t/{hd.slug}/tickets/{ticket['number']}")
    expect(requester.locator("a.file-name", has_text="invoice.pdf")).to_be_visible()
    keep(requester, "requester-ticket-with-pdf-390")
    agent.context.close()
    requester.context.close()


def test_a_refused_type_and_an_oversize_file_say_so_beside_the_field(live_server, browser, help_desk, keep,
                                                                       tmp_path):
    base, hd = live_server.url, help_desk
    ticket = hd.ticket_for(hd.requester, "Tool crashes")
    page = browser.new_context(**DESKTOP).new_page()
    browser_sign_in(page, base, hd.requester)
    page.goto(f"{base}/t/{hd.slug}/tickets/{ticket['number']}")
    # Named like text, but its bytes are a program: only the server can tell, and answers 415.
    page.get_by_label("file", exact=True).set_input_files(files(tmp_path, crash__txt=samples.elf()))
    item = page.locator(".upload-item", has_text="crash.txt")
    expect(item.locator(".badge")).to_have_text("refused")
    expect(page.locator("#file-error")).to_contain_text("crash.txt is not an allowed type here: its content is")
    expect(page.get_by_label("file", exact=True)).to_have_attribute("aria-invalid", "true")
    keep(page, "composer-refused-type-1280")
    page.get_by_role("button", name="Remove crash.txt").click()
    expect(page.locator("#file-error")).to_have_count(0)

    # Over the organization's limit: said at once, before sending, in the server's words.
    assert hd.tenant.api.patch("/api/v1/media/settings", json={"max_size": 2048}).status_code == 200
    page.goto(f"{base}/t/{hd.slug}/tickets/new")
    page.get_by_label("title").fill("Big log")
    page.get_by_label("file", exact=True).set_input_files(files(tmp_path, big__txt=samples.text(400)))
    expect(page.locator("#file-error")).to_have_text("big.txt is larger than the limit of 2048 bytes.")
    keep(page, "new-ticket-oversize-1280")
    # Sent anyway (the refused file stays out): the ticket opens without it.
    page.get_by_role("button", name="Open ticket").click()
    page.wait_for_url(re.compile(r"/tickets/\d+$"))
    expect(page.locator(".attachment")).to_have_count(0)
    page.context.close()


def test_a_removed_upload_is_deleted_and_an_admin_deletes_a_sent_file_live(live_server, browser, help_desk, keep,
                                                                           tmp_path):
    base, hd = live_server.url, help_desk
    ticket = hd.ticket_for(hd.requester, "Wrong file sent")
    used = hd.tenant.api.get("/api/v1/media/types").get_json()["used_bytes"]
    agent = open_ticket(browser, base, hd.agent, ticket)
    agent.get_by_label("file", exact=True).set_input_files(files(tmp_path, draft__pdf=samples.pdf()))
    item = agent.locator(".upload-item", has_text="draft.pdf")
    expect(item.locator(".badge")).not_to_have_text("uploading", timeout=LIVE)
    uploaded = item.get_attribute("data-upload-id")
    agent.get_by_role("button", name="Remove draft.pdf").click()  # taken off the message: deleted
    expect(agent.locator(".upload-item")).to_have_count(0)
    wait_until(lambda: hd.tenant.api.get(f"/api/v1/attachments/{uploaded}").status_code == 404,
               "the removed upload to be deleted", timeout=30)
    assert hd.tenant.api.get("/api/v1/media/types").get_json()["used_bytes"] == used

    requester = open_ticket(browser, base, hd.requester, ticket, PHONE)
    requester.get_by_label("file", exact=True).set_input_files(files(tmp_path, passwords__txt=samples.text()))
    expect(requester.locator(".upload-item .badge")).to_have_text("clean", timeout=LIVE)
    requester.get_by_label("body").fill("Here is the file.")
    requester.get_by_role("button", name="Send reply").click()
    sent = requester.locator(".attachment", has_text="passwords.txt")
    expect(sent).to_be_visible()
    own = sent.get_by_role("button", name="Delete passwords.txt")
    expect(own).to_be_visible()  # theirs to delete, while the ticket is not closed
    assert hd.tenant.api.post(f"/api/v1/tickets/{ticket['id']}/close", json={}).status_code == 200
    expect(own).to_be_hidden(timeout=LIVE)  # closed: it stays until they reopen (the server says 409)
    expect(requester.get_by_role("link", name=re.compile("^Reply to"))).to_have_count(0)  # nor may they write
    keep(requester, "requester-closed-sent-file-kept-390")
    assert hd.tenant.api.post(f"/api/v1/tickets/{ticket['id']}/reopen").status_code == 200
    expect(own).to_be_visible(timeout=LIVE)

    admin = open_ticket(browser, base, hd.admin, ticket)
    shown = admin.locator(".attachment", has_text="passwords.txt")
    expect(shown.get_by_role("button", name="Delete passwords.txt")).to_be_visible()
    keep(admin, "admin-file-delete-button-1280")
    admin.once("dialog", lambda dialog: dialog.accept())
    shown.get_by_role("button", name="Delete passwords.txt").click()
    expect(shown).to_have_count(0)
    expect(sent).to_have_count(0, timeout=LIVE)  # gone from the requester's open page too, live
    expect(requester.locator("article.msg", has_text="Here is the file.")).to_be_visible()
    keep(requester, "requester-file-deleted-live-390")
    for page in (agent, requester, admin):
        page.context.close()
