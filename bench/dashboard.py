"""Admin dashboard figures at scale: the page with its figures, cached and not, beside the plain list,
and the export of a filtered view.

One tenant is loaded by COPY with `BENCH_TICKETS` tickets (default 1,000,000; `bench.ticket_data`,
with first replies, resolutions and closings filled in). Its admin signs in through the form like
a browser. `GET /t/<slug>/admin` (the figures for the last 30 days, both charts, and the first 50
rows of the ticket table) is timed one request at a time on a keep-alive connection, interleaved
with `GET /api/v1/tickets?limit=50` timed the same way, in the same run:

- cached: the server as shipped (`DASHBOARD_CACHE_SECONDS=15`), so most renders read the figures
  from Redis and only the table and charts are built;
- uncached: a second server with `DASHBOARD_CACHE_SECONDS=0`, so every render runs every aggregate.

The export row streams `/t/<slug>/admin/export?format=csv` of a filtered view (closed, high
priority, created in the last year) while a sampler reads the web workers' resident memory.
"""

from __future__ import annotations

import re
import time
import uuid
from urllib.parse import urlencode

from bench import ticket_data
from bench.common import BenchContext, Row, percentile, timed_with_peak_rss
from bench.ui import Session

ROUNDS = 60
UNCACHED_ROUNDS = 30
ADMIN_PASSWORD = "benchmark-pw"  # what BenchContext.signup gives the admin
EXPORT_FILTER = {"status": "closed", "priority": "high"}


def run(ctx: BenchContext) -> list[Row]:
    slug = f"dash-{uuid.uuid4().hex[:6]}"
    key = ctx.signup(slug)
    print(f"loading {slug} by COPY ...", flush=True)
    facts = ticket_data.load(ctx.database_url, slug)
    size = f"{facts['tickets']:,} tickets"
    rows: list[Row] = []
    server = ctx.start_web(workers=1)
    try:
        rows += _page_vs_list(server.base_url, slug, key, size, "cached", ROUNDS)
        rows += _export(server, slug)
    finally:
        server.stop()
    server = ctx.start_web(workers=1, DASHBOARD_CACHE_SECONDS="0")
    try:
        rows += _page_vs_list(server.base_url, slug, key, size, "uncached", UNCACHED_ROUNDS)
    finally:
        server.stop()
    return rows


def _signed_in(base_url: str, slug: str) -> Session:
    session = Session(base_url)
    _, page = session.request("GET", f"/t/{slug}/login")
    token = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1).decode()
    status, _ = session.request("POST", f"/t/{slug}/login", urlencode({
        "email": f"admin@{slug}.example", "password": ADMIN_PASSWORD, "csrf_token": token}),
        {"Content-Type": "application/x-www-form-urlencoded"})
    if status != 302:
        raise RuntimeError(f"sign-in failed: {status}")
    return session


def _page_vs_list(base_url: str, slug: str, key: str, size: str, kind: str, rounds: int) -> list[Row]:
    browser = _signed_in(base_url, slug)
    api = Session(base_url)
    auth = {"Authorization": f"Bearer {key}"}
    page_path, list_path = f"/t/{slug}/admin", "/api/v1/tickets?limit=50"
    status, page = browser.request("GET", page_path)
    if status != 200 or b'id="flow-chart"' not in page or page.count(b"<tr data-number=") != 50:
        raise RuntimeError(f"the dashboard did not render its figures and table: {status} {page[:300]!r}")
    for _ in range(5):  # warm both paths (templates, the pool, Postgres' caches)
        browser.request("GET", page_path)
        api.request("GET", list_path, headers=auth)
    page_ms, list_ms = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        status, _ = browser.request("GET", page_path)
        page_ms.append((time.perf_counter() - start) * 1000)
        assert status == 200
        start = time.perf_counter()
        status, _ = api.request("GET", list_path, headers=auth)
        list_ms.append((time.perf_counter() - start) * 1000)
        assert status == 200
    how = ("figures from Redis when under 15 s old" if kind == "cached"
           else "DASHBOARD_CACHE_SECONDS=0: every aggregate on every render")
    note = f"{size}; {rounds} renders interleaved with the list, one at a time; {len(page) // 1024} KiB HTML; {how}"
    return [
        Row(f"admin dashboard page ({kind} figures), p50", percentile(page_ms, 50), "ms",
            "GET /api/v1/tickets?limit=50 p50", percentile(list_ms, 50), note=note),
        Row(f"admin dashboard page ({kind} figures), p95", percentile(page_ms, 95), "ms",
            "GET /api/v1/tickets?limit=50 p95", percentile(list_ms, 95), aim="< 300 ms",
            note=f"max {max(page_ms):.0f} ms"),
    ]


def _export(server, slug: str) -> list[Row]:
    browser = _signed_in(server.base_url, slug)
    path = f"/t/{slug}/admin/export?" + urlencode({**EXPORT_FILTER, "format": "csv"})
    (status, body), seconds, idle, peak = timed_with_peak_rss(server.worker_pids(),
                                                              lambda: browser.request("GET", path))
    if status != 200:
        raise RuntimeError(f"export: {status} {body[:300]!r}")
    rows = body.count(b"\n") - 1
    return [
        Row("admin export of a filtered view (closed, high) as CSV", seconds, "s", aim="< 20 s",
            note=f"{rows:,} rows, {len(body) // (1024 * 1024)} MiB, read by the bench client whole"),
        Row("admin export: peak RSS of the web worker", peak, "MiB", "same worker before the export", idle,
            aim="< 150 MB"),
    ]
