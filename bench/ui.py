"""Web UI figures: the agent's ticket page with 200 messages, and send-to-visible between two browsers.

The page row times `GET /t/<slug>/tickets/<n>` for a signed-in agent, one request at a time on
a keep-alive connection, beside `GET /api/v1/tickets/<id>/messages?limit=200` (the same 200
messages as JSON, Markdown rendered in both) timed the same way, interleaved, in the same run.

The live row drives Debian's Chromium (as the UI tests do): an agent's page and a requester's
page on one ticket, each signed in through the form. For each of 50 messages the agent's page
submits the composer (sent over the socket, shown at once), and the requester's page records
when the message's element appears; both read the same clock (`performance.timeOrigin + now()`).
Beside it: one message from a plain WebSocket client to another through the same server, the
floor the browsers add their work to.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import time
import uuid
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

from bench.common import BenchContext, Row, percentile
from bench.wsclient import AsyncWebSocket

MESSAGES = 200
PAGE_ROUNDS = 100
LIVE_MESSAGES = 50
PASSWORD = "benchmark-password"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BODIES = (
    "Thanks, I tried **restarting** it and the error is still there.",
    "Could you send the output of `lpstat -t`?\n\n- tray 1: ok\n- tray 2: jammed",
    "See [the guide](https://example.com/guide) for the steps; step 3 is the one that matters.",
    "Plain words, nothing fancy, just an answer that runs a little longer than a single line of text.",
)


def run(ctx: BenchContext) -> list[Row]:
    slug = f"ui-{uuid.uuid4().hex[:6]}"
    setup = _setup(ctx, slug)
    server = ctx.start_web(workers=1)
    try:
        rows = _page_vs_json(server.base_url, slug, setup)
        rows += _send_to_visible(ctx, server.base_url, slug, setup)
    finally:
        server.stop()
    return rows


def _setup(ctx: BenchContext, slug: str) -> dict:
    """Make an agent, a requester, a ticket with 200 messages (threads, notes), and keys for both."""
    key = ctx.signup(slug)
    client = ctx.app.test_client()
    admin = {"Authorization": f"Bearer {key}"}

    def post(path: str, body: dict, headers: dict) -> dict:
        response = client.post(path, json=body, headers=headers)
        if response.status_code != 201:
            raise RuntimeError(f"{path}: {response.status_code} {response.get_json()}")
        return response.get_json()

    def user(role: str, name: str) -> dict:
        body = {"email": f"{role}@{slug}.example", "name": name, "role": role, "password": PASSWORD}
        return post("/api/v1/users", body, admin)

    agent, requester = user("agent", "Ada Agent"), user("requester", "Jo Requester")

    def key_for(person: dict) -> dict:
        made = post("/api/v1/api-keys", {"name": "bench", "role": person["role"], "user_id": person["id"]}, admin)
        return {"Authorization": f"Bearer {made['key']}"}

    agent_key, requester_key = key_for(agent), key_for(requester)
    ticket = post("/api/v1/tickets", {"title": "Printer on fire", "description": "It is **on fire**."}, requester_key)
    roots: list[str] = []
    for i in range(MESSAGES):
        by_agent = i % 2 == 1
        body = {"body": BODIES[i % len(BODIES)] + f" ({i})"}
        if i % 3 == 2 and roots:
            body["parent_id"] = roots[-1]
        if by_agent and i % 10 == 9:
            body["internal"] = True
        made = post(f"/api/v1/tickets/{ticket['id']}/messages", body, agent_key if by_agent else requester_key)
        if "parent_id" not in body and not made["internal"]:
            roots.append(made["id"])
    return {"agent": agent, "requester": requester, "ticket": ticket, "agent_key": agent_key,
            "requester_key": requester_key}


class Session:
    """A browser-like client: one keep-alive connection, a cookie jar, signed in through the form."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        sent = {**(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        self.conn.request(method, path, body=body, headers=sent)
        response = self.conn.getresponse()
        data = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response.status, data

    def sign_in(self, slug: str, email: str) -> None:
        _, page = self.request("GET", f"/t/{slug}/login")
        token = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1).decode()
        status, _ = self.request("POST", f"/t/{slug}/login",
                                 urlencode({"email": email, "password": PASSWORD, "csrf_token": token}),
                                 {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 302:
            raise RuntimeError(f"sign-in failed: {status}")


def _page_vs_json(base_url: str, slug: str, setup: dict) -> list[Row]:
    browser = Session(base_url)
    browser.sign_in(slug, setup["agent"]["email"])
    api = Session(base_url)
    page_path = f"/t/{slug}/tickets/{setup['ticket']['number']}"
    json_path = f"/api/v1/tickets/{setup['ticket']['id']}/messages?limit={MESSAGES}"
    status, page = browser.request("GET", page_path)
    if status != 200 or page.count(b'class="msg') < MESSAGES:
        raise RuntimeError(f"the page does not show every message: {status}")
    status, listing = api.request("GET", json_path, headers=setup["agent_key"])
    if status != 200 or len(json.loads(listing)["items"]) != MESSAGES:
        raise RuntimeError(f"messages: {status} {listing[:300]!r}")
    page_ms, json_ms = [], []
    for _ in range(10):  # warm both paths (template and Markdown caches, the pool)
        browser.request("GET", page_path)
        api.request("GET", json_path, headers=setup["agent_key"])
    for _ in range(PAGE_ROUNDS):
        start = time.perf_counter()
        browser.request("GET", page_path)
        page_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        api.request("GET", json_path, headers=setup["agent_key"])
        json_ms.append((time.perf_counter() - start) * 1000)
    note = (f"{PAGE_ROUNDS} requests each, interleaved, one at a time; page {len(page) // 1024} KiB HTML, "
            f"JSON {len(listing) // 1024} KiB; p95 page {percentile(page_ms, 95):.1f} ms, "
            f"JSON {percentile(json_ms, 95):.1f} ms")
    return [Row("agent ticket page, 200 messages: server time p50", percentile(page_ms, 50), "ms",
                "JSON list of the same 200 messages p50", percentile(json_ms, 50), aim="<= 3x the JSON",
                note=note)]


def _send_to_visible(ctx: BenchContext, base_url: str, slug: str, setup: dict) -> list[Row]:
    from playwright.sync_api import sync_playwright

    floor = asyncio.run(_socket_floor(base_url, setup))
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            latencies = _browsers(chromium, base_url, slug, setup)
        finally:
            chromium.close()
    return [
        Row("agent presses send -> text visible to requester p50", percentile(latencies, 50), "ms",
            "WebSocket client -> client p50", percentile(floor, 50), aim="< 100 ms",
            note=f"{LIVE_MESSAGES} messages, two Chromium pages, one gunicorn worker"),
        Row("agent presses send -> text visible to requester p95", percentile(latencies, 95), "ms",
            "WebSocket client -> client p95", percentile(floor, 95), aim="< 250 ms",
            note=f"max {max(latencies):.1f} ms"),
    ]


def _browsers(chromium, base_url: str, slug: str, setup: dict) -> list[float]:
    pages = {}
    for who in ("agent", "requester"):
        page = chromium.new_context(viewport={"width": 1280, "height": 800}).new_page()
        page.goto(f"{base_url}/t/{slug}/login")
        page.get_by_label("email").fill(setup[who]["email"])
        page.get_by_label("password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base_url}/t/{slug}/")
        page.goto(f"{base_url}/t/{slug}/tickets/{setup['ticket']['number']}")
        page.locator('#live-status[data-state="live"]').wait_for(timeout=30_000)
        pages[who] = page
    pages["requester"].evaluate("""() => {
        window.seen = {};
        new MutationObserver(() => {
            for (const el of document.querySelectorAll('#threads article.msg')) {
                const found = /bench-(\\d+)-/.exec(el.textContent);
                if (found && !(found[1] in window.seen)) {
                    window.seen[found[1]] = performance.timeOrigin + performance.now();
                }
            }
        }).observe(document.getElementById('threads'), {childList: true, subtree: true});
    }""")
    latencies = []
    for i in range(LIVE_MESSAGES):
        sent = pages["agent"].evaluate("""(i) => {
            const form = document.getElementById('composer');
            form.querySelector('textarea').value = `bench-${i}- Try the second tray, then tell me what the panel says.`;
            const at = performance.timeOrigin + performance.now();
            form.requestSubmit();
            return at;
        }""", i)
        # The arrival time is taken in the page; waiting here only decides when to read it.
        pages["requester"].locator("#threads article.msg", has_text=f"bench-{i}-").wait_for(timeout=10_000)
        latencies.append(pages["requester"].evaluate(f"window.seen[{i}]") - sent)
        time.sleep(0.05)
    return latencies


async def _socket_floor(base_url: str, setup: dict, rounds: int = LIVE_MESSAGES) -> list[float]:
    """Time one message from a WebSocket client to another on the same ticket (no browser)."""
    parts = urlsplit(base_url)
    path = f"/api/v1/tickets/{setup['ticket']['id']}/stream?after_seq={MESSAGES}"
    sender = await AsyncWebSocket.connect(parts.hostname, parts.port, path, setup["agent_key"])
    receiver = await AsyncWebSocket.connect(parts.hostname, parts.port, path, setup["requester_key"])
    samples = []
    try:
        for i in range(rounds):
            start = time.perf_counter()
            sender.send(json.dumps({"type": "message", "body": f"floor {i}"}))
            while True:
                event = json.loads(await receiver.recv())
                if event.get("type") == "message.created" and event["message"]["body"] == f"floor {i}":
                    break
            samples.append((time.perf_counter() - start) * 1000)
    finally:
        await sender.close()
        await receiver.close()
    return samples
