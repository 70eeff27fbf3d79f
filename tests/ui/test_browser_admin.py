"""The admin's pages in Debian's Chromium against the app in gunicorn, with a real assignment worker:
the dashboard (charts, filters, search, sort, paging, exports of exactly the filtered rows), a rule
made and tested in the UI that then routes a real ticket where its dry run said, a key created and
revoked in the UI, and every admin page saved at 1280 and 390 px under tests/artifacts/.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.helpers import wait_until
from tests.servers import DESKTOP, PHONE
from tests.ui.conftest import browser_sign_in

pytestmark = pytest.mark.usefixtures("assignment_worker")


def table_numbers(page) -> list[int]:
    return [int(n) for n in page.locator("#ticket-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.number)")]


def api_numbers(hd, **query) -> set[int]:
    found, cursor = set(), None
    while True:
        args = {**query, "limit": 200, **({"cursor": cursor} if cursor else {})}
        params = "&".join(f"{k}={v}" for k, v in args.items())
        body = hd.tenant.api.get(f"/api/v1/tickets?{params}").get_json()
        found |= {t["number"] for t in body["items"]}
        cursor = body["next_cursor"]
        if not cursor:
            return found


def test_an_admin_reads_the_dashboard_filters_sorts_searches_pages_and_exports(live_server, browser, help_desk,
                                                                                keep, tmp_path):
    hd = help_desk
    api = hd.tenant.api
    for i in range(40):
        ticket = api.post("/api/v1/tickets", json={
            "title": f"{'Toner' if i % 3 == 0 else 'Paper'} jam {i}",
            "priority": ("low", "normal", "high", "urgent")[i % 4],
            "category": "hardware" if i % 5 else "billing"}).get_json()
        if i % 2 == 0:
            assert api.patch(f"/api/v1/tickets/{ticket['id']}", json={"status": "pending"}).status_code == 200
    page = browser.new_context(**DESKTOP, accept_downloads=True).new_page()
    browser_sign_in(page, live_server.url, hd.admin)
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
    expect(page.get_by_role("img", name="Tickets created against closed per day")).to_be_visible()
    expect(page.get_by_role("img", name="Open tickets per agent against capacity")).to_be_visible()
    expect(page.locator("#stat-open")).to_have_text("40")
    keep(page, "admin-dashboard-1280")
    page.goto(page.url + "?limit=4")

    # Filter by status and priority: the URL says so, the table shows exactly those.
    page.get_by_label("pending", exact=True).check()
    page.get_by_label("high", exact=True).check()
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"status=pending.*priority=high|priority=high.*status=pending"))
    wanted = api_numbers(hd, status="pending", priority="high")
    assert len(wanted) == 10
    first = table_numbers(page)
    assert len(first) == 4 and set(first) <= wanted

    # Sort by a column: "#" once is newest first, twice oldest first.
    page.locator("#ticket-table thead").get_by_role("link", name="#").click()
    expect(page.locator("#ticket-table thead th[aria-sort]")).to_have_attribute("aria-sort", "descending")
    page.locator("#ticket-table thead").get_by_role("link", name=re.compile("^#")).click()
    expect(page.locator("#ticket-table thead th[aria-sort]")).to_have_attribute("aria-sort", "ascending")
    assert "sort=number" in page.url
    # Page forward, to the end: every wanted ticket once, in order.
    seen = table_numbers(page)
    while page.get_by_role("link", name="Next page").count():
        page.get_by_role("link", name="Next page").click()
        page.wait_for_url(re.compile("cursor="))
        seen += table_numbers(page)
    assert seen == sorted(wanted)
    keep(page, "admin-dashboard-filtered-1280")

    # Search a word within the filters.
    page.goto(page.url.split("&cursor=")[0])
    page.get_by_label("q", exact=True).fill("toner")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile("q=toner"))
    searched = api_numbers(hd, status="pending", priority="high", q="toner")
    assert searched and set(table_numbers(page)) == searched

    # The exports hold exactly the filtered rows.
    with page.expect_download() as got:
        page.get_by_role("link", name="Export CSV").click()
    rows = list(csv.DictReader(Path(got.value.path()).read_text(encoding="utf-8").splitlines()))
    assert {int(r["number"]) for r in rows} == searched and len(rows) == len(searched)
    with page.expect_download() as got:
        page.get_by_role("link", name="Export JSON").click()
    exported = json.loads(Path(got.value.path()).read_text(encoding="utf-8"))
    assert {t["number"] for t in exported} == searched and len(exported) == len(searched)

    # A chart opens the filtered table: today's column lists today's tickets.
    page.goto(f"{live_server.url}/t/{hd.slug}/admin")
    page.locator("#flow-chart a.chart-link").last.click()
    page.wait_for_url(re.compile("created_after=.*created_before="))
    assert len(table_numbers(page)) == 40 or page.get_by_role("link", name="Next page").count()
    page.context.close()


def test_a_rule_made_in_the_ui_routes_a_real_ticket_where_its_dry_run_said(live_server, browser, help_desk, keep):
    hd = help_desk
    finance = hd.tenant.api.post("/api/v1/teams", json={"name": "Finance"}).get_json()
    hd.tenant.api.put(f"/api/v1/teams/{finance['id']}/members/{hd.agent2.id}")
    page = browser.new_context(**DESKTOP).new_page()
    browser_sign_in(page, live_server.url, hd.admin)
    page.goto(f"{live_server.url}/t/{hd.slug}/admin/rules")
    create = page.locator("form[action$='/admin/rules']")
    create.get_by_label("name", exact=True).fill("Billing to Finance")
    create.get_by_label("team_id").select_option(label="Finance")
    create.get_by_label("strategy").select_option("least_loaded")
    create.get_by_label("category").fill("billing")
    create.get_by_role("button", name="Add rule").click()
    expect(page.locator(".flashes")).to_contain_text("Rule Billing to Finance added")
    # It is tried after "Everything to Support": move it to the top.
    page.get_by_role("button", name="Move Billing to Finance up").click()
    expect(page.locator("#rules > li").first).to_contain_text("Billing to Finance")

    test = page.locator("form[action*='/admin/rules/test']")
    test.get_by_label("title").fill("Refund my invoice")
    test.get_by_label("category").fill("billing")
    test.get_by_label("priority").select_option("high")
    test.get_by_label("rule_id").select_option(label="Billing to Finance")
    test.get_by_role("button", name="Test").click()
    result = page.locator("#dry-run")
    expect(result).to_contain_text("Billing to Finance: matches, and decides.")
    expect(page.locator("#dry-team")).to_have_text("Finance")
    expect(page.locator("#dry-picked")).to_have_text("Bo Agent")
    expect(page.locator("#dry-candidates")).to_contain_text("Bo Agent")
    keep(page, "admin-rules-dry-run-1280")

    ticket = hd.ticket_for(hd.requester, "Refund my invoice", category="billing", priority="high")
    wait_until(lambda: hd.tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()["assignee_id"] is not None,
               "the worker assigns the ticket", timeout=30)
    landed = hd.tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()
    assert (landed["team_id"], landed["assignee_id"]) == (finance["id"], hd.agent2.id)
    why = hd.tenant.api.get(f"/api/v1/tickets/{ticket['id']}/assignment").get_json()["decision"]
    assert why["rule_name"] == "Billing to Finance"
    page.context.close()


def test_a_key_created_and_revoked_in_the_ui(live_server, browser, help_desk, keep, client):
    hd = help_desk
    page = browser.new_context(**DESKTOP).new_page()
    browser_sign_in(page, live_server.url, hd.admin)
    page.goto(f"{live_server.url}/t/{hd.slug}/admin/api-keys")
    form = page.locator("form[action$='/admin/api-keys']")
    form.get_by_label("name", exact=True).fill("Zapier")
    form.get_by_label("role").select_option("agent")
    form.get_by_label("user_id").select_option(label="Ada Agent (agent)")
    form.get_by_role("button", name="Create key").click()
    shown = page.locator("#new-key")
    expect(shown).to_have_value(re.compile(r"^tms_"))
    key = shown.input_value()
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("[data-copied-note]")).to_be_visible()
    keep(page, "admin-api-keys-created-1280")
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/tickets", headers=headers).status_code == 200

    page.goto(f"{live_server.url}/t/{hd.slug}/admin/api-keys")
    expect(page.locator("#new-key")).to_have_count(0)  # shown once
    expect(page.locator("#keys-table")).to_contain_text("Zapier")
    page.once("dialog", lambda dialog: dialog.accept())  # asked first
    page.get_by_role("button", name="Revoke Zapier").click()
    expect(page.locator(".flashes")).to_contain_text("revoked")
    expect(page.locator("#keys-table tr", has_text="Zapier")).to_contain_text("revoked")
    assert client.get("/api/v1/tickets", headers=headers).status_code == 401
    page.context.close()


PAGES = (("admin-dashboard", "/admin"), ("admin-people", "/admin/people"), ("admin-person", "/admin/people/{agent}"),
         ("admin-person-self", "/admin/people/{admin}"), ("admin-teams", "/admin/teams"),
         ("admin-rules", "/admin/rules"), ("admin-rule", "/admin/rules/{rule}"), ("admin-api-keys", "/admin/api-keys"),
         ("admin-webhooks", "/admin/webhooks"), ("admin-webhook", "/admin/webhooks/{hook}"),
         ("admin-media", "/admin/media"), ("admin-audit", "/admin/audit"))


def test_every_admin_page_at_both_widths(live_server, browser, help_desk, keep):
    hd = help_desk
    api = hd.tenant.api
    for i in range(8):
        hd.ticket_for(hd.requester, f"Printer {i} jams", priority=("low", "normal", "high", "urgent")[i % 4])
    api.patch(f"/api/v1/users/{hd.agent.id}", json={"capacity": 5, "skills": ["printers"]})
    hook = api.post("/api/v1/webhooks", json={"url": "https://hooks.example.com/t", "events": ["ticket.created"],
                                              "description": "CRM"}).get_json()
    api.post("/api/v1/api-keys", json={"name": "CRM sync"})
    rule = api.get("/api/v1/assignment-rules").get_json()["items"][0]
    ids = {"agent": hd.agent.id, "admin": hd.admin.id, "rule": rule["id"], "hook": hook["id"]}
    for context, width in ((DESKTOP, "1280"), (PHONE, "390")):
        page = browser.new_context(**context).new_page()
        browser_sign_in(page, live_server.url, hd.admin)
        for name, path in PAGES:
            response = page.goto(f"{live_server.url}/t/{hd.slug}{path.format(**ids)}")
            assert response.status == 200, path
            expect(page.locator("h1")).to_be_visible()
            # nothing wider than the screen but the charts' own scrolling box
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, (path, width, overflow)
            keep(page, f"{name}-{width}")
        page.context.close()
