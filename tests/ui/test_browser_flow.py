"""The help desk as people use it, in Debian's Chromium against the app in gunicorn, with a real
assignment worker: a requester opens a ticket, it is auto-assigned, the agent answers in a thread,
the requester sees it live, an internal note never reaches the requester, the agent closes it.

Every main page is saved under tests/artifacts/ at 1280 and 390 px.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.servers import DESKTOP, PHONE
from tests.ui.conftest import browser_sign_in

pytestmark = pytest.mark.usefixtures("assignment_worker")
LIVE = 15_000  # ms: a generous bound for anything that crosses the worker or the socket


def frames_of(page) -> list[str]:
    """Record every WebSocket frame `page` receives from now on."""
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload))))
    return frames


def test_a_requester_and_an_agent_talk_live_on_a_ticket(live_server, browser, help_desk, keep):
    base, hd = live_server.url, help_desk
    requester = browser.new_context(**DESKTOP).new_page()
    agent = browser.new_context(**DESKTOP).new_page()
    requester_frames = frames_of(requester)

    # The requester signs in to an empty portal that says what to do next.
    browser_sign_in(requester, base, hd.requester)
    expect(requester.get_by_role("heading", name="You have no tickets yet")).to_be_visible()
    keep(requester, "requester-my-tickets-empty-1280")

    # ... and opens a ticket through the form.
    requester.get_by_role("link", name="Open your first ticket").click()
    requester.get_by_label("title").fill("Printer on fire")
    requester.get_by_label("description").fill("It is **on fire**.\n\n- tray 2\n- since 10:00")
    requester.get_by_label("priority").select_option("high")
    requester.get_by_label("category").fill("hardware")
    keep(requester, "new-ticket-form-1280")
    requester.get_by_role("button", name="Open ticket").click()
    expect(requester.get_by_role("heading", name=re.compile("Printer on fire"))).to_be_visible()
    expect(requester.locator("#live-status")).to_have_text("Live", timeout=LIVE)
    expect(requester.locator("#description strong")).to_have_text("on fire")  # Markdown, rendered
    number = int(re.search(r"/tickets/(\d+)", requester.url).group(1))

    # Auto-assignment happens in the worker; the requester's page learns it live.
    expect(requester.locator("#facts-assignee")).to_have_text(re.compile("Ada Agent|Bo Agent"), timeout=LIVE)
    ticket = hd.tenant.api.get(f"/api/v1/tickets/by-number/{number}").get_json()
    assignee = hd.agent if ticket["assignee_id"] == hd.agent.id else hd.agent2
    assert ticket["status"] == "open"

    # The requester adds a detail: it shows at once, then is marked delivered with its seq.
    requester.get_by_label("body").fill("Also, it smells of toner.")
    requester.get_by_role("button", name="Send reply").click()
    mine = requester.locator("article.msg", has_text="smells of toner")
    expect(mine).to_have_attribute("data-delivered", "true")
    expect(mine).to_have_attribute("data-seq", "1")
    root_id = mine.get_attribute("data-id")

    # The agent, in a second browser context, finds it in "Mine" and opens it from the keyboard.
    browser_sign_in(agent, base, assignee)
    expect(agent.get_by_role("link", name=re.compile(r"^Mine"))).to_have_attribute("aria-current", "page")
    expect(agent.locator("#ticket-list")).to_contain_text("Printer on fire")
    keep(agent, "agent-queue-mine-1280")
    agent.keyboard.press("j")
    agent.keyboard.press("Enter")
    agent.wait_for_url(f"**/tickets/{number}")
    expect(agent.locator("#live-status")).to_have_text("Live", timeout=LIVE)
    expect(agent.locator(".why")).to_contain_text("Everything to Support")
    expect(agent.locator(".why")).to_contain_text("round robin")

    # The agent types (the requester sees it), then replies in the requester's thread.
    agent.locator(f"#m-{root_id} [data-reply-to]").click()
    thread_box = agent.locator(f'li.thread[data-root="{root_id}"] form.thread-composer textarea')
    thread_box.press_sequentially("Try the second tray")
    expect(requester.locator("#typing")).to_have_text(f"{assignee.name} is typing…", timeout=LIVE)
    thread_box.press_sequentially(", and keep the lid **open**.")
    thread = agent.locator(f'li.thread[data-root="{root_id}"]')
    thread.locator("form.thread-composer").get_by_role("button", name="Send reply").click()
    reply = thread.locator(".replies article", has_text="second tray")
    expect(reply).to_have_attribute("data-delivered", "true")

    # The requester sees the reply nested in the thread, live, with its Markdown rendered.
    live_reply = requester.locator(f'li.thread[data-root="{root_id}"] .replies article', has_text="second tray")
    expect(live_reply).to_be_visible(timeout=LIVE)
    expect(live_reply.locator("strong")).to_have_text("open")
    expect(live_reply.locator(".author")).to_have_text(assignee.name)

    # An internal note: visibly different, and it never reaches the requester.
    agent.get_by_label("internal").check()
    expect(agent.locator("#composer")).to_have_class(re.compile("is-internal"))
    agent.locator("#composer").get_by_label("body").fill("Customer is on the enterprise plan.")
    agent.get_by_role("button", name="Add internal note").click()
    note = agent.locator("article.msg--internal", has_text="enterprise plan")
    expect(note).to_have_attribute("data-delivered", "true")
    expect(requester.locator("#typing")).to_have_text("")  # writing a note tells the requester nothing
    expect(note.locator(".badge-note")).to_be_visible()
    agent.get_by_label("internal").uncheck()
    agent.locator("#composer").get_by_label("body").fill("We are sending a technician.")
    agent.get_by_role("button", name="Send reply").click()
    expect(requester.locator("article.msg", has_text="sending a technician")).to_be_visible(timeout=LIVE)
    keep(agent, "agent-ticket-1280")
    keep(requester, "requester-ticket-1280")
    assert "enterprise plan" not in requester.content()
    assert not [f for f in requester_frames if "enterprise plan" in f]
    assert any("sending a technician" in f for f in requester_frames)
    source = requester.request.get(requester.url).text()
    assert "sending a technician" in source and "enterprise plan" not in source

    # The agent raises the priority; the requester's details follow without reloading.
    agent.locator("#panel-form").get_by_label("priority").select_option("urgent")
    agent.get_by_role("button", name="Save changes").click()
    expect(requester.locator("#facts-priority")).to_contain_text("urgent", timeout=LIVE)

    # The agent closes the ticket; the requester sees it closed, when and how, without reloading.
    expect(agent.locator("#live-status")).to_have_text("Live", timeout=LIVE)
    expect(agent.get_by_label("resolution")).to_be_visible()  # live updates never hide the box
    for page in (agent, requester):
        ids = page.locator("[id]").evaluate_all("els => els.map(e => e.id)")
        assert len(ids) == len(set(ids)), "no id twice on a page"
    agent.get_by_label("resolution").fill("Replaced the fuser.")
    agent.get_by_role("button", name="Close ticket").click()
    expect(agent.locator("#ticket-status")).to_have_text(re.compile("closed"))
    expect(agent.locator("#resolution-text")).to_have_text("Replaced the fuser.")
    expect(requester.locator("#ticket-status")).to_have_text(re.compile("closed"), timeout=LIVE)
    expect(requester.get_by_text("This ticket is closed.")).to_be_visible()
    expect(requester.locator("#composer")).to_be_hidden()
    expect(requester.locator("#resolution-text")).to_have_text("Replaced the fuser.")
    expect(requester.locator("#facts-closed")).not_to_be_empty()
    keep(requester, "requester-ticket-closed-1280")
    assert hd.tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()["status"] == "closed"

    # The same pages on a phone: the requester can do the whole job at 390 px.
    phone = browser.new_context(**PHONE).new_page()
    browser_sign_in(phone, base, hd.requester)
    expect(phone.locator("table.list")).to_contain_text("Printer on fire")
    keep(phone, "requester-my-tickets-390")
    phone.get_by_role("link", name="Printer on fire").click()
    expect(phone.locator("#live-status")).to_have_text("Live", timeout=LIVE)
    keep(phone, "requester-ticket-closed-390")
    phone.get_by_role("button", name="Reopen ticket").click()
    expect(phone.locator("#ticket-status")).to_have_text(re.compile("open"))
    expect(phone.locator("#live-status")).to_have_text("Live", timeout=LIVE)
    phone.get_by_label("body").fill("It caught fire again.")
    phone.get_by_role("button", name="Send reply").click()
    expect(phone.locator("article.msg", has_text="caught fire again")).to_have_attribute("data-delivered", "true")
    keep(phone, "requester-ticket-390")
    phone.goto(f"{base}/t/{hd.slug}/tickets/new")
    keep(phone, "new-ticket-form-390")

    agent_phone = browser.new_context(**PHONE).new_page()
    browser_sign_in(agent_phone, base, assignee)
    keep(agent_phone, "agent-queue-mine-390")
    agent_phone.goto(f"{base}/t/{hd.slug}/tickets/{number}")
    expect(agent_phone.locator("#live-status")).to_have_text("Live", timeout=LIVE)
    conversation = agent_phone.locator("section.conversation").bounding_box()
    panel = agent_phone.locator("aside.panel").bounding_box()
    assert panel["y"] >= conversation["y"] + conversation["height"], "the panel folds under the conversation"
    assert panel["width"] <= 390
    keep(agent_phone, "agent-ticket-390")
    for context_page in (requester, agent, phone, agent_phone):
        context_page.context.close()
