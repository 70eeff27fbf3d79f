"""Forms in the browser: one posted by the browser goes once however fast it is sent again, and a
destructive one asks first and does nothing when the answer is no."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.servers import DESKTOP, PHONE
from tests.ui.conftest import browser_sign_in


def test_a_new_ticket_sent_twice_at_once_opens_one_ticket(live_server, browser, help_desk):
    hd, base = help_desk, live_server.url
    page = browser.new_context(**DESKTOP).new_page()
    browser_sign_in(page, base, hd.requester)
    page.goto(f"{base}/t/{hd.slug}/tickets/new")
    page.get_by_label("title").fill("Sent twice")
    # Two submissions in one task: the second comes while the first is on its way, and goes nowhere.
    sent = page.evaluate("""() => {
      const form = document.querySelector("form[action$='/tickets/new']");
      const sent = [];
      window.addEventListener("submit", (event) => sent.push(!event.defaultPrevented)); // after app.js's
      form.requestSubmit();
      form.requestSubmit();
      return sent;
    }""")
    assert sent == [True, False]
    expect(page.get_by_role("heading", name="Sent twice")).to_be_visible()
    mine = hd.tenant.key_for(hd.requester.user).get("/api/v1/tickets").get_json()["items"]
    assert [t["title"] for t in mine] == ["Sent twice"]
    page.go_back()  # back on the form: it may be sent again
    page.get_by_label("title").fill("Sent again later")
    page.get_by_role("button", name="Open ticket").click()
    expect(page.get_by_role("heading", name="Sent again later")).to_be_visible()
    page.context.close()


def test_a_destructive_action_asks_first(live_server, browser, help_desk):
    hd, base = help_desk, live_server.url
    page = browser.new_context(**DESKTOP).new_page()
    browser_sign_in(page, base, hd.admin)
    page.goto(f"{base}/t/{hd.slug}/admin/people/{hd.agent.id}")
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Deactivate Ada Agent").click()
    expect(page.get_by_role("button", name="Deactivate Ada Agent")).to_be_visible()
    assert asked and asked[0].startswith("Deactivate Ada Agent?")
    assert hd.tenant.api.get(f"/api/v1/users/{hd.agent.id}").status_code == 200, "no means nothing happens"
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Deactivate Ada Agent").click()
    expect(page.locator(".alert-success")).to_be_visible()
    assert hd.tenant.api.get(f"/api/v1/users/{hd.agent.id}").status_code == 404
    page.context.close()


def test_an_agent_opens_a_ticket_for_a_customer_by_email_in_the_browser(live_server, browser, help_desk, keep):
    """Through the page's script (it posts the form and reads a refusal as JSON) at both widths."""
    hd, base = help_desk, live_server.url
    for name, size in (("1280", DESKTOP), ("390", PHONE)):
        page = browser.new_context(**size).new_page()
        browser_sign_in(page, base, hd.agent)
        page.goto(f"{base}/t/{hd.slug}/tickets/new")
        page.get_by_label("requester").fill("nobody@example.com")
        page.get_by_label("title").fill(f"Phoned in ({name})")
        page.get_by_role("button", name="Open ticket").click()
        expect(page.locator("#requester-error")).to_contain_text("No one in this organization has this email")
        expect(page.get_by_label("requester")).to_have_attribute("aria-invalid", "true")
        keep(page, f"agent-new-ticket-unknown-requester-{name}")
        page.get_by_label("requester").fill(hd.requester.email)
        page.get_by_role("button", name="Open ticket").click()
        expect(page.get_by_role("heading", name=f"Phoned in ({name})")).to_be_visible()
        keep(page, f"agent-ticket-opened-for-requester-{name}")
        page.context.close()
    theirs = hd.tenant.key_for(hd.requester.user).get("/api/v1/tickets").get_json()["items"]
    assert sorted(t["title"] for t in theirs) == ["Phoned in (1280)", "Phoned in (390)"]


def test_a_requester_changes_their_password_from_their_name_in_the_bar(live_server, browser, help_desk, keep):
    hd, base = help_desk, live_server.url
    for viewport, name in ((DESKTOP, "1280"), (PHONE, "390")):
        page = browser.new_context(**viewport).new_page()
        browser_sign_in(page, base, hd.requester)
        page.get_by_role("link", name=hd.requester.user["name"]).click()
        expect(page.get_by_role("heading", name="Your password")).to_be_visible()
        page.get_by_label("current_password").fill("not my password")
        page.get_by_label("password", exact=True).fill("a brand new password")
        page.get_by_role("button", name="Change password").click()
        expect(page.get_by_text("This is not your password.")).to_be_visible()
        keep(page, f"password-refused-{name}")
        page.context.close()
    page = browser.new_context(**DESKTOP).new_page()
    browser_sign_in(page, base, hd.requester)
    page.goto(f"{base}/t/{hd.slug}/me/password")
    page.get_by_label("current_password").fill(hd.requester.password)
    page.get_by_label("password", exact=True).fill("a brand new password")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Your password is changed.")).to_be_visible()
    page.context.close()
