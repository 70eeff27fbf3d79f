"""Long unbroken text (a URL as a title, a stack trace, a wide table, a long name) never widens a page:
every page stays as wide as the screen at 1280 and 390 px, and its buttons stay where they can be used.
"""

from __future__ import annotations

from playwright.sync_api import expect

from tests.helpers import post_message
from tests.servers import DESKTOP, PHONE
from tests.ui.conftest import browser_sign_in

LIVE = 15_000
URL = "https://intranet.example.com/" + "very-long-path-segment/" * 6 + "?q=" + "x" * 30  # 200 characters
TRACE = "```\nTraceback (most recent call last): " + "File \"/srv/app/deeply/nested/module.py\", line 42, in f; " * 12 \
    + "\n```"
TABLE = ("| " + " | ".join(f"column{i}" for i in range(30)) + " |\n|" + "---|" * 30 + "\n| "
         + " | ".join("v" * 12 for _ in range(30)) + " |")
WORD = "Supercalifragilisticexpialidocious" * 10


def fits(page, width: int, where: str) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth") - width
    assert overflow <= 0, f"{where} is {overflow} px wider than the screen at {width} px"


def test_long_unbroken_text_never_widens_a_page(live_server, browser, help_desk, keep):
    hd, base = help_desk, live_server.url
    hd.tenant.api.patch(f"/api/v1/teams/{hd.team['id']}", json={"name": "Team" + "X" * 150})
    ticket = hd.ticket_for(hd.requester, title=URL, description=f"It fails with:\n\n{TRACE}\n\n{TABLE}\n\n{WORD}",
                           tags=["t" * 60])
    agent_key = hd.tenant.key_for(hd.agent.user)
    root = post_message(agent_key, ticket["id"], body=f"Which one? {WORD}\n\n{TRACE}").get_json()
    pages = [
        (hd.requester, ["", f"tickets/{ticket['number']}"]),
        (hd.agent, ["?queue=open", f"tickets/{ticket['number']}"]),
        (hd.admin, ["admin", "admin/teams", "admin/people", "admin/audit"]),
    ]
    for size, width in ((DESKTOP, 1280), (PHONE, 390)):
        for person, paths in pages:
            page = browser.new_context(**size).new_page()
            browser_sign_in(page, base, person)
            for path in paths:
                page.goto(f"{base}/t/{hd.slug}/{path}")
                expect(page.locator("h1")).to_be_visible()
                fits(page, width, f"{person.user['role']}'s /{path}")
            if person is hd.requester:
                keep(page, f"requester-ticket-long-text-{width}")
                # Answering in the thread: its button is reachable (a wide thread once covered it).
                page.locator(f"#m-{root['id']} [data-reply-to]").click()
                form = page.locator(f'li.thread[data-root="{root["id"]}"] form.thread-composer')
                form.locator("textarea").fill(f"This one {width}")
                form.get_by_role("button", name="Send reply").click()
                expect(page.locator("article.msg", has_text=f"This one {width}")).to_have_attribute(
                    "data-delivered", "true", timeout=LIVE)
                fits(page, width, "the requester's ticket after a reply")
            page.context.close()
