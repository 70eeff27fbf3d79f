"""Ticket figures: create/list/get and message post throughput beside the bare ceilings, find latency
and export at scale.

Throughput rows load the product under gunicorn with wrk in rounds, each beside a round of the bare
endpoint it is divided by. Latency rows send a query mix one request at a time (keep-alive, so each figure is one
request's full path: key check, tenant, query, JSON) against one tenant loaded by COPY with
`BENCH_TICKETS` tickets (default 1,000,000) and three messages each, and report nearest-rank
p50/p95 over every request of the mix. The export row streams every ticket of that tenant as CSV
while a sampler reads the web workers' resident memory.
"""

from __future__ import annotations

import http.client
import json
import os
import pickle
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean
from typing import Any
from unittest import mock
from urllib.parse import urlencode, urlsplit

from bench import app_cpu, ticket_data
from bench.common import BenchContext, Row, WrkResult, median, parse_wrk, percentile, timed_with_peak_rss
from tenants import TenantStatement

REPEAT = int(os.environ.get("BENCH_FIND_REPEAT", "12"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))  # bare, product (and its statement) in turn, per row
MESSAGE_TICKETS = 50
MESSAGE_BODY = {"body": "Tried that: the tray is empty and it still smokes. **Photo** attached soon."}
CREATE_BODY = {"title": "Printer on fire", "description": "Smoke from the paper tray after a jam. " * 8,
               "priority": "high", "tags": ["hardware", "urgent"]}


def run(ctx: BenchContext) -> list[Row]:
    server = ctx.start_web()
    try:
        rows = _throughput(ctx, server)
        rows += _find_and_export(ctx, server)
    finally:
        server.stop()
    return rows


def _throughput(ctx: BenchContext, server) -> list[Row]:
    key = ctx.signup(f"tickets-{uuid.uuid4().hex[:6]}")
    auth = {"Authorization": f"Bearer {key}"}
    json_auth = {**auth, "Content-Type": "application/json"}
    bare = ctx.start_web("bench.bare_app:app", BENCH_STATEMENTS=str(_record_statements(ctx, key)))
    try:
        create = _paired(ctx, bare.base_url + "/insert", "POST", lambda seconds: _wrk(
            ctx, server.base_url + "/api/v1/tickets", seconds, method="POST", headers=json_auth,
            body=json.dumps(CREATE_BODY)), ceiling=bare.base_url + "/statement/create")
        client = _Client(server.base_url, key)
        status, body = client.get(f"/api/v1/tickets?limit={MESSAGE_TICKETS}")
        assert status == 200, body
        ids = [t["id"] for t in json.loads(body)["items"]]
        listing = _paired(ctx, bare.base_url + "/select50", "GET", lambda seconds: _wrk(
            ctx, server.base_url + "/api/v1/tickets?limit=50", seconds, headers=auth),
            ceiling=bare.base_url + "/statement/list")
        get = _paired(ctx, bare.base_url + "/select1", "GET", lambda seconds: _wrk(
            ctx, server.base_url + f"/api/v1/tickets/{ids[0]}", seconds, headers=auth))
        post = _paired(ctx, bare.base_url + "/insert", "POST", lambda seconds: _wrk(
            ctx, server.base_url, seconds, method="POST", headers=json_auth, body=json.dumps(MESSAGE_BODY),
            paths=[f"/api/v1/tickets/{i}/messages" for i in ids]), ceiling=bare.base_url + "/statement/post")
    finally:
        bare.stop()
    in_process = app_cpu.rows(ctx, [
        ("create", ("POST", "/api/v1/tickets", json.dumps(CREATE_BODY)), ("POST", "/insert", "-")),
        ("list", ("GET", "/api/v1/tickets?limit=50", "-"), ("GET", "/select50", "-")),
        ("get", ("GET", f"/api/v1/tickets/{ids[0]}", "-"), ("GET", "/select1", "-")),
        ("message post", ("POST", f"/api/v1/tickets/{ids[1]}/messages", json.dumps(MESSAGE_BODY)),
         ("POST", "/insert", "-")),
    ], key)
    return [
        create.row("ticket create: POST /tickets (key+ticket+audit+outbox)", "bare one INSERT + COMMIT",
                   ">= 0.70 of baseline"),
        create.ceiling_row("create's own statement alone, bare app", "bare one INSERT + COMMIT"),
        listing.row("ticket list: GET /tickets?limit=50", "bare 50-row indexed SELECT", ">= 0.90 of baseline"),
        listing.ceiling_row("list's own statement alone, bare app (rows as JSON)", "bare 50-row indexed SELECT"),
        get.row("ticket get: GET /tickets/{id}", "bare 1-row SELECT by primary key", ">= 0.80 of baseline"),
        post.row("message post: POST /tickets/{id}/messages", "bare one INSERT + COMMIT", ">= 0.70 of baseline",
                 f"{len(ids)} tickets; "),
        post.ceiling_row("message post's own statement alone, bare app", "bare one INSERT + COMMIT"),
        *in_process,
    ]


@dataclass
class _Paired:
    """Rounds of a bare endpoint and the product's (and the product's own statement alone), run in turn."""

    bare: list[WrkResult]
    product: list[WrkResult]
    ceiling: list[WrkResult]

    def row(self, name: str, baseline_name: str, aim: str, note: str = "") -> Row:
        """The product's mean req/s beside the bare's over the same rounds, each round's ratio in the note."""
        ratios = ", ".join(f"{p.rps / b.rps:.2f}" for b, p in zip(self.bare, self.product, strict=True))
        return Row(name, mean(p.rps for p in self.product), "req/s", baseline_name,
                   mean(b.rps for b in self.bare), aim=aim,
                   note=f"{note}rounds {ratios}; median of the rounds' p50 "
                        f"{median([p.p50_ms for p in self.product]):.1f} ms and p99 "
                        f"{median([p.p99_ms for p in self.product]):.1f} ms; non-2xx/socket errors "
                        f"{sum(p.errors for p in self.product)} (bare {sum(b.errors for b in self.bare)})")

    def ceiling_row(self, name: str, baseline_name: str) -> Row:
        """The product's statement run by the bare app, beside the bare endpoint: the most the product could reach."""
        ratios = ", ".join(f"{c.rps / b.rps:.2f}" for b, c in zip(self.bare, self.ceiling, strict=True))
        reached = mean(p.rps for p in self.product) / mean(c.rps for c in self.ceiling)
        rounds = ", ".join(f"{p.rps / c.rps:.2f}" for c, p in zip(self.ceiling, self.product, strict=True))
        return Row(name, mean(c.rps for c in self.ceiling), "req/s", baseline_name, mean(b.rps for b in self.bare),
                   aim="reported (about the most the row above could reach)",
                   note=f"rounds {ratios}; the product reached {reached:.2f} of this (rounds {rounds}); "
                        f"non-2xx/socket errors {sum(c.errors for c in self.ceiling)}")


def _paired(ctx: BenchContext, bare_url: str, bare_method: str, product: Callable[[int], WrkResult], *,
            ceiling: str | None = None) -> _Paired:
    """Run the bare endpoint and the product in turn, `ROUNDS` times, half the run's duration each.

    The host's load drifts over minutes: a ceiling measured once at the start of the run and the
    product minutes later differed by a quarter from drift alone. Side by side, the drift falls
    on both. With `ceiling` (the bare app's URL running the product's own statement), that runs
    in each round too. The order rotates by round, so each side goes first (and follows each
    other's writes) in turn.
    """
    seconds = max(2, ctx.duration // 2)
    runs: dict[str, list[WrkResult]] = {"bare": [], "product": [], "ceiling": []}
    sides: list[tuple[str, Callable[[], WrkResult]]] = [
        ("bare", lambda: ctx.wrk(bare_url, method=bare_method, duration=seconds)),
        ("product", lambda: product(seconds))]
    if ceiling:
        sides.append(("ceiling", lambda: ctx.wrk(ceiling, method=bare_method, duration=seconds)))
    for round_ in range(ROUNDS):
        first = round_ % len(sides)
        for side, measure in sides[first:] + sides[:first]:
            runs[side].append(measure())
    return _Paired(**runs)


def _record_statements(ctx: BenchContext, key: str) -> Path:
    """Record the statements of a create, a message post and a page as the product runs them, for the bare app.

    Opens `MESSAGE_TICKETS` tickets, posts one message and reads a page in process; each of these
    requests runs exactly one prebuilt statement, which is kept (`bench.bare_app.Recorded`) with
    what the bare app changes on every run: a new row's id and times, and the ticket a message
    goes to, picked among these tickets so row locks spread as the product's do.
    """
    seen: list[tuple[str, list[Any], bool]] = []
    run = TenantStatement.execute

    def spy(statement: TenantStatement, cursor: Any, params: dict[str, Any], **options: Any) -> Any:
        seen.append((statement.sql(), statement.positional(params), options.get("binary", False)))
        return run(statement, cursor, params, **options)

    client = ctx.app.test_client()
    auth = {"Authorization": f"Bearer {key}"}

    def request(method: str, path: str, body: dict | None, status: int) -> tuple[dict, tuple[str, list[Any], bool]]:
        seen.clear()
        response = client.open(path, method=method, json=body, headers=auth)
        if response.status_code != status or len(seen) != 1:
            raise RuntimeError(f"recording {method} {path}: answered {response.status_code} (not {status}) "
                               f"after {len(seen)} prebuilt statements (not 1)")
        return response.get_json(), seen[0]

    with mock.patch.object(TenantStatement, "execute", spy):
        tickets = []
        for _ in range(MESSAGE_TICKETS):
            made, create = request("POST", "/api/v1/tickets", CREATE_BODY, 201)
            tickets.append(uuid.UUID(made["id"]))
        message, post = request("POST", f"/api/v1/tickets/{tickets[0]}/messages", MESSAGE_BODY, 201)
        page, listing = request("GET", "/api/v1/tickets?limit=50", None, 200)
    recorded = {
        "create": _marked(create, made=tickets[-1]),
        "post": _marked(post, made=uuid.UUID(message["id"]), rotate=(tickets[0], tickets)),
        "list": _marked(listing, fields=list(page["items"][0]), keep=len(page["items"])),
    }
    path = ctx.work_dir / "statements.pickle"
    path.write_bytes(pickle.dumps(recorded))
    return path


def _marked(statement: tuple[str, list[Any], bool], *, made: uuid.UUID | None = None,
              rotate: tuple[uuid.UUID, list[uuid.UUID]] | None = None, fields: list[str] | None = None,
              keep: int = 0) -> dict[str, Any]:
    """Mark what the bare app changes in a recorded statement: the `made` row's id, every time, the
    ticket `rotate[0]` (picked among `rotate[1]`)."""
    sql, values, binary = statement
    for value in (made, rotate and rotate[0]):
        if value is not None and value not in values:
            raise RuntimeError(f"recording: {value} is not among the values of {sql[:80]!r}")
    return {"sql": sql, "values": values, "binary": binary,
            "fresh": [values.index(made)] if made else [],
            "now": [i for i, value in enumerate(values) if isinstance(value, datetime)],
            "rotate": {values.index(rotate[0]): rotate[1]} if rotate else {},
            "fields": fields or [], "keep": keep}


def _wrk(ctx: BenchContext, url: str, seconds: int, *, method: str = "GET", headers: dict[str, str] | None = None,
         body: str | None = None, paths: list[str] | None = None) -> WrkResult:
    """Run wrk exactly as `ctx.wrk` does, tolerating the trailing blank wrk prints after a latency in seconds.

    With `paths`, each request goes to one of them in turn (messages spread over tickets, as people post).
    """
    lines = [f'wrk.method = "{method}"', *(f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items())]
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body)}")
    if paths:
        lines += [f"paths = {{{', '.join(json.dumps(p) for p in paths)}}}", "counter = 0",
                  "request = function()", "  counter = counter + 1",
                  "  return wrk.format(nil, paths[counter % #paths + 1])", "end"]
    script = ctx.work_dir / f"wrk-tickets-{time.monotonic_ns()}.lua"
    script.write_text("\n".join(lines))
    out = subprocess.run(["wrk", "-t", "2", "-c", "32", "-d", f"{seconds}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    return parse_wrk("\n".join(line.rstrip() for line in out.splitlines()))


def _find_and_export(ctx: BenchContext, server) -> list[Row]:
    slug = f"tickets-big-{uuid.uuid4().hex[:6]}"
    key = ctx.signup(slug)
    print(f"loading {slug} by COPY ...", flush=True)
    facts = ticket_data.load(ctx.database_url, slug)
    n = facts["tickets"]
    size = f"{n:,} tickets + {facts['messages']:,} messages"
    client = _Client(server.base_url, key)
    agent, requester = facts["agents"][3], facts["requesters"][11]
    month_ago = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    lists = {
        "status=open, newest": {"status": "open", "sort": "-created_at"},
        "new+urgent, newest": {"status": "new", "priority": "urgent", "sort": "-created_at"},
        "agent's open, by updated": {"assignee_id": agent, "status": "open", "sort": "-updated_at"},
        "tag=vip, by priority": {"tag": "vip", "sort": "-priority"},
        "requester's, newest": {"requester_id": requester, "sort": "-created_at"},
        "last 30 days, oldest first": {"created_after": month_ago, "sort": "created_at"},
        "high, by number desc": {"priority": "high", "sort": "-number"},
        "pending+open, by status": {"status": "pending,open", "sort": "status"},
        "category (1 in 200), newest": {"category": "Legal", "sort": "-created_at"},
        "category nobody has": {"category": "Warranty", "sort": "-created_at"},
    }
    searches = {
        "rare code": {"q": "ref01234"},
        "rare code 2": {"q": "ref00077"},
        "common word": {"q": "printer"},
        "common, two words": {"q": "printer error"},
        "multi-word": {"q": "login expired"},
        "phrase": {"q": '"paper jam"'},
        "prefix": {"q": "netw*"},
        "messages only": {"q": "screenshot"},
        "no match": {"q": "xylophone"},
        "common + no match": {"q": "printer xylophone"},
        "common + filter": {"q": "printer", "status": "open"},
        "rare, newest first": {"q": "ref04321", "sort": "-created_at"},
    }
    list_lat, list_worst = _latencies(client, lists)
    find_lat, find_worst = _latencies(client, searches)
    export_s, peak, idle, lines = _export(server, client)
    return [
        Row("find: filtered + sorted list, p50", percentile(list_lat, 50), "ms", note=size),
        Row("find: filtered + sorted list, p95", percentile(list_lat, 95), "ms", aim="< 50 ms",
            note=f"{len(lists)} shapes x {REPEAT}; slowest shape p95: {list_worst}"),
        Row("find: q full-text search, p50", percentile(find_lat, 50), "ms", note=size),
        Row("find: q full-text search, p95", percentile(find_lat, 95), "ms", aim="< 50 ms",
            note=f"{len(searches)} queries x {REPEAT}; slowest query p95: {find_worst}"),
        Row(f"export all {n:,} tickets as CSV", export_s, "s", aim="< 20 s",
            note=f"{lines - 1:,} rows streamed"),
        Row("export: peak RSS of the web worker", peak, "MiB", "same worker before the export", idle,
            aim="< 150 MB"),
        Row(f"bench fixture: COPY {size} + indexes", facts["load_seconds"], "s", aim="minutes, not hours"),
    ]


def _latencies(client: _Client, mix: dict[str, dict]) -> tuple[list[float], str]:
    """Run every query of the mix REPEAT times after one warm-up; return all latencies and the slowest."""
    every: list[float] = []
    per_query: dict[str, list[float]] = {}
    for name, params in mix.items():
        status, body = client.get("/api/v1/tickets?" + urlencode({**params, "limit": 50}))
        if status != 200:
            raise RuntimeError(f"{name}: {status} {body[:300]!r}")
        order = json.loads(body).get("order")
        times = []
        for _ in range(REPEAT):
            start = time.perf_counter()
            status, _ = client.get("/api/v1/tickets?" + urlencode({**params, "limit": 50}))
            times.append((time.perf_counter() - start) * 1000)
            assert status == 200
        per_query[f"{name} ({order})"] = times
        every += times
    worst = max(per_query, key=lambda q: percentile(per_query[q], 95))
    return every, f"{worst} {percentile(per_query[worst], 95):.1f} ms"


def _export(server, client: _Client) -> tuple[float, float, float, int]:
    """Stream the CSV export to nowhere; return seconds, peak and idle RSS (MiB) and lines read."""
    lines, seconds, idle, peak = timed_with_peak_rss(
        server.worker_pids(), lambda: client.stream_lines("/api/v1/tickets/export?format=csv"))
    return seconds, peak, idle, lines


class _Client:
    """One keep-alive HTTP connection carrying the API key."""

    def __init__(self, base_url: str, key: str) -> None:
        parts = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        self.headers = {"Authorization": f"Bearer {key}"}

    def get(self, path: str) -> tuple[int, bytes]:
        self.conn.request("GET", path, headers=self.headers)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def stream_lines(self, path: str) -> int:
        self.conn.request("GET", path, headers=self.headers)
        resp = self.conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"export: {resp.status} {resp.read()[:300]!r}")
        lines = 0
        while chunk := resp.read(1 << 20):
            lines += chunk.count(b"\n")
        return lines
