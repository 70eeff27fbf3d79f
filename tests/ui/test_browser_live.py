"""The live parts of the ticket page in a real browser: a dropped socket catches up with nothing lost
or doubled, hostile text stays text, and two agents editing one ticket are told, not overwritten.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from app.conversation.stream import CHANGES_TOLD
from tenants.context import current_tenant
from tests.helpers import post_message, wait_until
from tests.servers import DESKTOP, PHONE, start_gunicorn, stop_gunicorn
from tests.ui.conftest import browser_sign_in, open_ticket

LIVE = 15_000
PAYLOADS = (
    '<script>window.__pwned = "script"</script>',
    '<img src=x onerror="window.__pwned = \'img\'">',
    '[click me](javascript:window.__pwned="link")',
    '"><svg onload="window.__pwned=\'svg\'">',
    '</script><script>window.__pwned="json"</script>',
)
HOSTILE = " ".join(PAYLOADS)


@pytest.fixture
def own_server(app, services):
    """A server of this test's own, whose worker process the test may kill."""
    server = start_gunicorn(services)
    yield server
    stop_gunicorn(server)


def worker_pid(server) -> int | None:
    out = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def test_a_dropped_socket_reconnects_and_catches_up_without_loss_or_doubles(own_server, browser, help_desk, keep):
    hd, base = help_desk, own_server.url
    ticket = hd.ticket_for(hd.requester, title="Flaky network")
    agent_key = hd.tenant.key_for(hd.agent.user)
    page = browser.new_context(**DESKTOP).new_page()
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    browser_sign_in(page, base, hd.requester)
    rendered = datetime.now(UTC)
    page.goto(f"{base}/t/{hd.slug}/tickets/{ticket['number']}")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=LIVE)
    post_message(agent_key, ticket["id"], body="before the drop")
    expect(page.locator("article.msg", has_text="before the drop")).to_be_visible(timeout=LIVE)

    # The web worker holding the socket dies; gunicorn starts another.
    old = worker_pid(own_server)
    os.kill(old, signal.SIGKILL)
    expect(page.locator("#live-status")).not_to_have_text("Live", timeout=LIVE)
    for i in range(5):  # written while the page has no socket (nobody can hear them live)
        post_message(agent_key, ticket["id"], body=f"missed {i}")
    wait_until(lambda: worker_pid(own_server) not in (None, old), "gunicorn to start a new worker", timeout=30)

    expect(page.locator("#live-status")).to_have_text("Live", timeout=LIVE)
    for i in range(5):
        expect(page.locator("article.msg", has_text=f"missed {i}")).to_have_count(1, timeout=LIVE)
    post_message(agent_key, ticket["id"], body="after the drop")
    expect(page.locator("article.msg", has_text="after the drop")).to_have_count(1, timeout=LIVE)
    seqs = [int(s) for s in page.locator("article.msg[data-seq]").evaluate_all("els => els.map(e => e.dataset.seq)")]
    assert seqs == list(range(1, 8)), "every message once, in order"
    keep(page, "requester-ticket-after-reconnect-1280")
    # Every socket asks for the changes since the page was made (a minute's margin): neither lived
    # the 15 minutes a resync covers, so neither can vouch for more. A page back from a long sleep
    # is told what changed meanwhile.
    asked = [datetime.fromisoformat(parse_qs(urlsplit(url).query)["changed_since"][0]) for url in sockets]
    assert len(asked) >= 2 and len(set(asked)) == 1, asked
    assert rendered - timedelta(seconds=62) <= asked[0] <= rendered - timedelta(seconds=58), (asked, rendered)


def busy_thread(hd) -> tuple[dict, object, list[dict]]:
    """A requester's ticket with `CHANGES_TOLD` + 1 messages of an agent's: the ticket, agent's key, messages."""
    ticket = hd.ticket_for(hd.requester, title="Busy thread")
    agent_key = hd.tenant.key_for(hd.agent.user)
    posted = [post_message(agent_key, ticket["id"], body=f"step {i}").get_json() for i in range(CHANGES_TOLD + 1)]
    return ticket, agent_key, posted


def revise_all(agent_key, ticket: dict, posted: list[dict]) -> None:
    for message in posted:
        edited = agent_key.patch(f"/api/v1/tickets/{ticket['id']}/messages/{message['id']}",
                                 json={"body": message["body"] + " (revised)"})
        assert edited.status_code == 200, edited.get_json()


def test_a_page_back_after_more_changes_than_a_socket_retells_offers_a_reload(own_server, browser, help_desk, keep):
    """A socket tells at most `CHANGES_TOLD` edits and deletions made while the page was away; past that it
    says so (`changes.truncated`), and the page offers a reload instead of showing stale messages as current."""
    hd, base = help_desk, own_server.url
    ticket, agent_key, posted = busy_thread(hd)
    page = browser.new_context(**DESKTOP).new_page()
    browser_sign_in(page, base, hd.requester)
    page.goto(f"{base}/t/{hd.slug}/tickets/{ticket['number']}")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=LIVE)
    expect(page.locator("#stale-notice")).to_be_hidden()

    old = worker_pid(own_server)
    os.kill(old, signal.SIGKILL)
    expect(page.locator("#live-status")).not_to_have_text("Live", timeout=LIVE)
    page.context.set_offline(True)  # no new socket before every edit is made (under load, one came mid-way)
    revised = time.monotonic()
    revise_all(agent_key, ticket, posted)  # every one edited while the page has no socket
    wait_until(lambda: worker_pid(own_server) not in (None, old), "gunicorn to start a new worker", timeout=30)
    page.context.set_offline(False)

    expect(page.locator("#live-status")).to_have_text("Live", timeout=LIVE)
    expect(page.locator("#stale-notice")).to_be_visible(timeout=LIVE)
    expect(page.locator("article.msg", has_text=f"step {CHANGES_TOLD} (revised)")).to_have_count(1)  # the newest told
    page.locator("article.msg", has_text=f"step {CHANGES_TOLD} (revised)").scroll_into_view_if_needed()
    expect(page.locator("#stale-notice")).to_be_in_viewport()  # kept in sight, wherever the reader is
    keep(page, "requester-ticket-stale-notice-1280", full_page=False)
    time.sleep(max(0.0, revised + 6 - time.monotonic()))  # a page made seconds after a change may still miss it
    page.locator("#stale-notice a").click()
    expect(page.locator("#live-status")).to_have_text("Live", timeout=LIVE)
    expect(page.locator("article.msg", has_text="step 0 (revised)")).to_have_count(1)
    expect(page.locator("#stale-notice")).to_be_hidden()  # the new page shows those changes


def test_changes_made_before_the_first_socket_that_it_cannot_retell_offer_a_reload(live_server, browser, help_desk):
    """The page was made, then more changed than a socket retells before its first socket opened."""
    hd, base = help_desk, live_server.url
    ticket, agent_key, posted = busy_thread(hd)
    page = browser.new_context(**DESKTOP).new_page()
    browser_sign_in(page, base, hd.requester)

    def edits_first(route) -> None:
        revise_all(agent_key, ticket, posted)
        route.continue_()

    page.route("**/stream-token", edits_first)
    page.goto(f"{base}/t/{hd.slug}/tickets/{ticket['number']}")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=LIVE)
    expect(page.locator("#stale-notice")).to_be_visible(timeout=LIVE)
    expect(page.locator("article.msg", has_text="step 0 (revised)")).to_have_count(0)  # left out: the page is stale


def test_a_page_made_after_the_changes_a_socket_leaves_out_offers_no_reload(own_server, browser, help_desk, in_tenant):
    """Changes made before the page, even within the minute its sockets ask about, are on it already:
    neither its first socket nor one after a drop makes it offer a reload."""
    hd, base = help_desk, own_server.url
    ticket, agent_key, posted = busy_thread(hd)
    revise_all(agent_key, ticket, posted)
    with in_tenant(hd.tenant) as session:  # made half a minute ago
        session.execute(sa.text(f'UPDATE "{current_tenant().schema}".messages SET edited_at = edited_at - '
                                "interval '30 seconds' WHERE ticket_id = :id"), {"id": ticket["id"]})
        session.commit()
    page = browser.new_context(**DESKTOP).new_page()
    browser_sign_in(page, base, hd.requester)
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload))))
    page.goto(f"{base}/t/{hd.slug}/tickets/{ticket['number']}")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=LIVE)

    def told(sockets: int) -> None:  # Playwright hands over frames only while the page is waited on
        deadline = time.monotonic() + 20
        while sum("changes.truncated" in f for f in frames) < sockets:
            assert time.monotonic() < deadline, f"socket {sockets} did not say what it left out"
            page.wait_for_timeout(100)

    told(1)
    expect(page.locator("#stale-notice")).to_be_hidden()
    old = worker_pid(own_server)
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: worker_pid(own_server) not in (None, old), "gunicorn to start a new worker", timeout=30)
    expect(page.locator("#live-status")).to_have_text("Live", timeout=LIVE)
    told(2)
    expect(page.locator("#stale-notice")).to_be_hidden()
    expect(page.locator("article.msg", has_text="step 0 (revised)")).to_have_count(1)


def test_script_in_a_title_description_and_message_stays_inert(live_server, browser, help_desk, keep):
    hd, base = help_desk, live_server.url
    dialogs: list[str] = []
    requester = browser.new_context(**DESKTOP).new_page()
    requester.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    browser_sign_in(requester, base, hd.requester)
    requester.goto(f"{base}/t/{hd.slug}/tickets/new")
    requester.get_by_label("title").fill(PAYLOADS[0][:200])
    requester.get_by_label("description").fill(HOSTILE)
    requester.get_by_label("category").fill(PAYLOADS[3][:100])
    requester.get_by_role("button", name="Open ticket").click()
    expect(requester.locator("#live-status")).to_have_text("Live", timeout=LIVE)
    requester.get_by_label("body").fill(HOSTILE)
    requester.get_by_role("button", name="Send reply").click()
    expect(requester.locator("article.msg[data-delivered]")).to_have_count(1)
    number = int(re.search(r"/tickets/(\d+)", requester.url).group(1))

    agent = browser.new_context(**DESKTOP).new_page()
    agent.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    browser_sign_in(agent, base, hd.agent)
    agent.goto(f"{base}/t/{hd.slug}/?queue=open")
    expect(agent.locator("#ticket-list")).to_contain_text("<script>")  # shown as text
    agent.goto(f"{base}/t/{hd.slug}/tickets/{number}")
    expect(agent.locator("#live-status")).to_have_text("Live", timeout=LIVE)
    agent.locator("#composer").get_by_label("body").fill(HOSTILE)
    agent.get_by_role("button", name="Send reply").click()
    expect(requester.locator("article.msg[data-seq]")).to_have_count(2, timeout=LIVE)  # arrived live over the socket
    requester.reload()
    expect(requester.locator("#live-status")).to_have_text("Live", timeout=LIVE)
    for page in (requester, agent):
        assert page.evaluate("window.__pwned") is None
        assert page.locator("#main script:not(#ticket-data), #main img, #main svg, #main iframe").count() == 0
        assert page.locator(".msg-body a[href^='javascript']").count() == 0
        expect(page.get_by_role("heading", level=1)).to_contain_text("<script>")
    assert dialogs == []
    keep(agent, "agent-ticket-hostile-text-1280")


def test_two_agents_editing_one_ticket_the_second_gets_the_conflict_message(live_server, browser, help_desk, keep):
    hd, base = help_desk, live_server.url
    ticket = hd.ticket_for(hd.requester, title="Contested")
    first = browser.new_context(**DESKTOP).new_page()
    second = browser.new_context(**DESKTOP).new_page()
    for page, person in ((first, hd.agent), (second, hd.agent2)):
        browser_sign_in(page, base, person)
        page.goto(f"{base}/t/{hd.slug}/tickets/{ticket['number']}")
        expect(page.locator("#live-status")).to_have_text("Live", timeout=LIVE)

    second.get_by_label("status").select_option("pending")  # Bo starts editing ...
    second.get_by_label("priority").select_option("low")
    first.get_by_label("priority").select_option("urgent")  # ... while Ada saves the same field
    first.get_by_role("button", name="Save changes").click()
    expect(first.get_by_text("Saved.")).to_be_visible()
    expect(second.locator("#changed-notice")).to_be_visible(timeout=LIVE)  # Bo is warned live
    expect(second.locator("#ticket-priority")).to_contain_text("urgent")
    second.get_by_role("button", name="Save changes").click()

    expect(second.get_by_role("alert")).to_contain_text("Someone else changed this ticket while you were editing it")
    expect(second.get_by_label("priority")).to_have_value("urgent")  # the form shows their change
    expect(second.get_by_label("status")).to_have_value("new")
    keep(second, "agent-ticket-conflict-1280")
    state = hd.tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()
    assert (state["priority"], state["status"]) == ("urgent", "new")
    second.get_by_label("status").select_option("pending")  # now Bo applies his change knowingly,
    second.get_by_role("button", name="Save changes").click()  # leaving her priority as it is
    expect(second.get_by_text("Saved.")).to_be_visible()
    state = hd.tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()
    assert (state["priority"], state["status"]) == ("urgent", "pending")
    expect(first.locator("#ticket-status")).to_contain_text("pending", timeout=LIVE)
    # Ada had not touched her form: it follows along, so her next save is not refused.
    expect(first.get_by_label("status")).to_have_value("pending")


def test_an_agent_added_after_the_page_loaded_is_shown_and_kept_by_the_next_save(live_server, browser, help_desk):
    hd, base = help_desk, live_server.url
    ticket = hd.ticket_for(hd.requester, title="Handed over")
    page = browser.new_context(**DESKTOP).new_page()
    browser_sign_in(page, base, hd.agent)
    page.goto(f"{base}/t/{hd.slug}/tickets/{ticket['number']}")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=LIVE)

    newcomer = hd.tenant.user("agent", name="Newcomer Nell")  # not in the page's assignee list
    assert hd.tenant.api.patch(f"/api/v1/tickets/{ticket['id']}",
                               json={"assignee_id": newcomer["id"]}).status_code == 200
    expect(page.get_by_label("assignee")).to_have_value(newcomer["id"], timeout=LIVE)  # the untouched form follows
    expect(page.locator(".why .why-stale")).to_have_text(re.compile("assignee changed"))  # its reasons are old
    page.get_by_label("priority").select_option("high")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    state = hd.tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()
    assert (state["priority"], state["assignee_id"]) == ("high", newcomer["id"])


def test_the_queue_keyboard_and_empty_states(live_server, browser, help_desk, keep):
    hd, base = help_desk, live_server.url
    agent = browser.new_context(**DESKTOP).new_page()
    browser_sign_in(agent, base, hd.agent)
    expect(agent.get_by_role("heading", name="Nothing assigned to you")).to_be_visible()
    keep(agent, "agent-queue-empty-1280")
    for i in range(3):
        hd.ticket_for(hd.requester, title=f"Waiting {i}", priority=("low", "high", "urgent")[i])
    agent.goto(f"{base}/t/{hd.slug}/?queue=unassigned")
    rows = agent.locator("#ticket-list tbody tr")
    expect(rows).to_have_count(3)
    agent.keyboard.press("j")
    agent.keyboard.press("j")
    expect(rows.nth(1)).to_have_class(re.compile("is-selected"))
    agent.keyboard.press("k")
    expect(rows.nth(0)).to_have_class(re.compile("is-selected"))
    agent.keyboard.press("/")
    expect(agent.get_by_label("q", exact=True)).to_be_focused()
    agent.keyboard.type("Waiting 1")
    agent.keyboard.press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Waiting 1")
    agent.goto(f"{base}/t/{hd.slug}/?queue=open&sort=-priority")
    expect(rows.first).to_contain_text("Waiting 2")
    keep(agent, "agent-queue-all-open-1280")
    phone = browser.new_context(**PHONE).new_page()
    browser_sign_in(phone, base, hd.agent)
    phone.goto(f"{base}/t/{hd.slug}/?queue=open")
    keep(phone, "agent-queue-all-open-390")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390, "nothing scrolls sideways on a phone"
    # On a phone the column headers are not shown, nor reachable by keyboard: the toolbar sorts instead.
    expect(phone.locator("#ticket-list thead a").first).to_be_hidden()
    phone.get_by_label("sort").select_option("priority")
    phone.get_by_role("button", name="Search").click()
    expect(phone.locator("#ticket-list tbody tr").first).to_contain_text("Waiting 0")  # low first
    expect(phone.get_by_label("sort")).to_have_value("priority")
    expect(agent.get_by_label("sort")).to_be_hidden()  # a wide screen sorts by its column headers
    agent.get_by_role("link", name="updated").click()
    expect(agent.locator("#ticket-list thead th[aria-sort]")).to_have_attribute("aria-sort", "descending")


def test_dark_mode_follows_the_system_setting(live_server, browser, help_desk, keep):
    hd, base = help_desk, live_server.url
    ticket = hd.ticket_for(hd.requester, title="Screen too bright", description="Please **dim** it.")
    post_message(hd.tenant.key_for(hd.agent.user), ticket["id"], body="Internal: check the *model*", internal=True)
    post_message(hd.tenant.key_for(hd.agent.user), ticket["id"], body="Try dark mode.")
    for name, size in (("1280", DESKTOP), ("390", PHONE)):
        page = browser.new_context(**size, color_scheme="dark").new_page()
        browser_sign_in(page, base, hd.agent)
        page.goto(f"{base}/t/{hd.slug}/?queue=open")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(13, 17, 23)", background
        keep(page, f"agent-queue-dark-{name}")
        page.goto(f"{base}/t/{hd.slug}/tickets/{ticket['number']}")
        expect(page.locator("#live-status")).to_have_text("Live", timeout=LIVE)
        keep(page, f"agent-ticket-dark-{name}")
        page.context.close()


def test_the_small_pages_at_both_widths(live_server, browser, help_desk, keep):
    """Sign-in, sign-up, a refused form, a missing ticket and a requester's list, seen at 1280 and 390 px."""
    hd, base = help_desk, live_server.url
    for i in range(3):
        hd.ticket_for(hd.requester, title=f"Request {i}", priority=("low", "normal", "urgent")[i])
    for name, size in (("1280", DESKTOP), ("390", PHONE)):
        page = browser.new_context(**size).new_page()
        page.goto(f"{base}/signup")
        keep(page, f"signup-{name}")
        page.get_by_label("name", exact=True).fill("Acme\u202eevil")  # reorders the text around it
        page.get_by_label("slug").fill(f"rtl{name}x")
        page.get_by_label("admin_email").fill("a@rtl.example")
        page.get_by_label("admin_password").fill("a long password")
        page.get_by_role("button", name=re.compile("Create|Sign up", re.I)).click()
        expect(page.locator("#name-error")).to_have_text("Bidirectional control characters are not allowed in a name.")
        keep(page, f"signup-refused-name-{name}")
        page.goto(f"{base}/t/{hd.slug}/login")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        keep(page, f"sign-in-{name}")
        browser_sign_in(page, base, hd.requester)
        expect(page.locator("table.list tbody tr")).to_have_count(3)
        keep(page, f"requester-my-tickets-{name}")
        page.goto(f"{base}/t/{hd.slug}/tickets/new")
        page.get_by_role("button", name="Open ticket").click()
        expect(page.locator("#title-error")).to_have_text("This is required.")
        expect(page.get_by_label("title")).to_have_attribute("aria-invalid", "true")
        keep(page, f"new-ticket-refused-{name}")
        page.goto(f"{base}/t/{hd.slug}/tickets/999")
        expect(page.get_by_role("heading", name="Not Found")).to_be_visible()
        keep(page, f"not-found-{name}")
        assert page.evaluate("document.documentElement.scrollWidth") <= size["viewport"]["width"]
        page.context.close()


def test_a_reply_in_the_thread_of_an_internal_note_is_a_note(live_server, browser, help_desk):
    """The thread composer under a note offers only a note: a public reply would show the requester the note's id."""
    hd, base = help_desk, live_server.url
    ticket = hd.ticket_for(hd.requester, title="Noisy fan")
    agent_key = hd.tenant.key_for(hd.agent.user)
    note = post_message(agent_key, ticket["id"], body="Check the warranty", internal=True).get_json()
    public = post_message(agent_key, ticket["id"], body="Looking into it").get_json()
    page = browser.new_context(**DESKTOP).new_page()
    browser_sign_in(page, base, hd.agent)
    page.goto(f"{base}/t/{hd.slug}/tickets/{ticket['number']}")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=LIVE)

    page.locator(f"#m-{note['id']} [data-reply-to]").click()
    form = page.locator(f'li.thread[data-root="{note["id"]}"] form.thread-composer')
    expect(form.get_by_label("internal")).to_be_checked()
    expect(form.get_by_label("internal")).to_be_disabled()
    expect(form).to_have_class(re.compile("is-internal"))
    form.locator("textarea").fill("Warranty ends in May")
    form.get_by_role("button", name="Add internal note").click()
    reply = page.locator(f'li.thread[data-root="{note["id"]}"] .replies article', has_text="Warranty ends")
    expect(reply).to_have_attribute("data-delivered", "true")
    expect(reply).to_have_class(re.compile("msg--internal"))

    page.locator(f"#m-{public['id']} [data-reply-to]").click()
    other = page.locator(f'li.thread[data-root="{public["id"]}"] form.thread-composer')
    expect(other.get_by_label("internal")).not_to_be_checked()
    expect(other.get_by_label("internal")).to_be_enabled()
    expect(other.get_by_role("button", name="Send reply")).to_be_visible()
    page.context.close()
    last = hd.tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"][-1]
    assert (last["body"], last["parent_id"], last["internal"]) == ("Warranty ends in May", note["id"], True)


def test_deleting_a_threads_first_message_live_keeps_its_replies(live_server, browser, help_desk, keep):
    hd, base = help_desk, live_server.url
    ticket = hd.ticket_for(hd.requester, title="Printer jams")
    agent_key = hd.tenant.key_for(hd.agent.user)
    root = post_message(agent_key, ticket["id"], body="Which tray?").get_json()
    alone = post_message(agent_key, ticket["id"], body="Wrong ticket, sorry").get_json()
    reply = post_message(agent_key, ticket["id"], body="The lower one, it seems", parent_id=root["id"]).get_json()
    page = browser.new_context(**DESKTOP).new_page()
    browser_sign_in(page, base, hd.requester)
    page.goto(f"{base}/t/{hd.slug}/tickets/{ticket['number']}")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=LIVE)

    for message in (root, alone):
        assert agent_key.delete(f"/api/v1/tickets/{ticket['id']}/messages/{message['id']}").status_code == 204
    expect(page.locator(f"#m-{alone['id']}")).to_have_count(0, timeout=LIVE)  # a thread of one goes whole
    thread = page.locator(f'li.thread[data-root="{root["id"]}"]')
    expect(thread.locator(f"#m-{root['id']}")).to_have_text("This message was deleted.")
    expect(thread.locator(f"#m-{reply['id']}")).to_contain_text("The lower one, it seems")
    keep(page, "thread-first-message-deleted-live-1280")
    page.context.close()


# The socket is lost with a message frame: before it went out, or after (stored, echo never read).
LOSE_WITH_NEXT_MESSAGE = """
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  if (window.__lose && String(data).includes('"type":"message"')) {
    const when = window.__lose;
    window.__lose = null;
    if (when === "after") send.call(this, data);
    this.close();
    return;
  }
  return send.call(this, data);
};
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_message_lost_with_its_socket_is_sent_again_on_reconnect_and_stored_once(
        live_server, browser, help_desk, keep, when):
    hd, base = help_desk, live_server.url
    ticket = hd.ticket_for(hd.requester, title="Patchy wifi")
    page = browser.new_context(**DESKTOP).new_page()
    page.add_init_script(LOSE_WITH_NEXT_MESSAGE)
    browser_sign_in(page, base, hd.requester)
    page.goto(f"{base}/t/{hd.slug}/tickets/{ticket['number']}")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=LIVE)

    page.evaluate(f"window.__lose = {when!r}")
    page.locator("#composer textarea[name=body]").fill("Sent as the train went into a tunnel")
    page.locator("#composer button[type=submit]").click()
    sent = page.locator("article.msg", has_text="Sent as the train")
    expect(sent).to_have_attribute("data-delivered", "true", timeout=LIVE)
    expect(page.locator("#live-status")).to_have_text("Live")
    page.locator("#composer textarea[name=body]").fill("And this one after it")
    page.locator("#composer button[type=submit]").click()
    expect(page.locator("article.msg", has_text="And this one")).to_have_attribute("data-delivered", "true",
                                                                                  timeout=LIVE)
    expect(sent).to_have_count(1)
    keep(page, f"requester-message-resent-{when}-1280")
    page.context.close()
    stored = hd.tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]
    assert [m["body"] for m in stored] == ["Sent as the train went into a tunnel", "And this one after it"]


def answer_message_frames(page, code: int, message: str, once: bool = False) -> None:
    """Have the page's socket answer its message frames with this error itself (in a later task, as the
    server's answers arrive), sending nothing; with `once`, only the first."""
    page.evaluate("""([code, message, once]) => {
      const send = WebSocket.prototype.send;
      let answered = false;
      WebSocket.prototype.send = function (data) {
        const frame = JSON.parse(data);
        if (frame.type !== "message" || (once && answered)) return send.call(this, data);
        answered = true;
        setTimeout(() => this.dispatchEvent(new MessageEvent("message", { data: JSON.stringify(
          { type: "error", code, message, ref: frame.ref }) })));
      };
    }""", [code, message, once])


def test_a_message_the_server_could_not_store_can_be_sent_again(live_server, browser, help_desk, keep):
    """An error the server says may pass (503, 409, 429) leaves a Send again button; a refusal does not."""
    hd, base = help_desk, live_server.url
    ticket = hd.ticket_for(hd.requester, title="Busy server")
    page = open_ticket(browser, base, hd.requester, ticket)
    answer_message_frames(page, 503, "The message could not be stored; send it again.", once=True)
    page.locator("#composer textarea[name=body]").fill("Second time lucky")
    page.locator("#composer button[type=submit]").click()
    sent = page.locator("article.msg", has_text="Second time lucky")
    expect(sent.locator("[data-state]")).to_have_text("The message could not be stored; send it again.")
    keep(page, "requester-message-send-again-1280")
    sent.get_by_role("button", name="Send again").click()
    expect(sent).to_have_attribute("data-delivered", "true", timeout=LIVE)
    expect(sent.get_by_role("button", name="Send again")).to_have_count(0)

    answer_message_frames(page, 422, "The frame has invalid fields.")
    page.locator("#composer textarea[name=body]").fill("Never good")
    page.locator("#composer button[type=submit]").click()
    refused = page.locator("article.msg", has_text="Never good")
    expect(refused.locator("[data-state]")).to_have_text("The frame has invalid fields.")
    expect(refused.get_by_role("button", name="Send again")).to_have_count(0)
    page.context.close()
    stored = hd.tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]
    assert [m["body"] for m in stored] == ["Second time lucky"]


def test_tags_being_typed_are_not_overwritten_by_a_live_change(live_server, browser, help_desk):
    hd, base = help_desk, live_server.url
    ticket = hd.ticket_for(hd.requester, title="Typing tags", tags=["vip"])
    page = open_ticket(browser, base, hd.agent, ticket)
    tags = page.locator("#panel-form").get_by_label("tags")
    tags.click()
    tags.press("End")
    tags.press_sequentially(", billing")  # still in the box: no "change" event yet
    assert hd.tenant.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"priority": "high"}).status_code == 200
    expect(page.locator("#changed-notice")).to_be_visible(timeout=LIVE)
    expect(tags).to_have_value("vip, billing")
    expect(tags).to_be_focused()
