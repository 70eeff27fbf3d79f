"""Chat figures: delivery latency and rate across two processes, and idle sockets per process.

Beside them, a bare Redis PUBLISH -> subscriber round trip measured in the same run: the floor
under any cross-process delivery. Latency is from the sender's clock reading before it sends
the frame to a receiver's after it parsed the event (one machine, one monotonic clock).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time
import uuid
from urllib.parse import urlsplit

import redis

from bench.common import BenchContext, Row, percentile, rss_mb
from bench.wsclient import AsyncWebSocket, Closed

TICKETS = 20
SOCKETS_PER_TICKET = 10
# Messages/s per ticket in the latency run: 100 msg/s stored and 900 deliveries/s in all, about
# half of what the flat-out run stores on this 2-core machine, so latency is not queueing.
PACED_PER_TICKET = int(os.environ.get("BENCH_CHAT_RATE", "5"))
IN_FLIGHT = 4  # unacknowledged messages per sender in the throughput run
# (sockets to open on one process, GUNICORN_THREADS): the product's setting (1,100 threads per
# worker), then more threads, to show the limit is the thread count and what memory it costs.
IDLE_PROBES = ((1050, None), (2000, 2100))


def run(ctx: BenchContext) -> list[Row]:
    key, tickets = _setup(ctx, "chat-bench")
    rows = _bare_publish(ctx)
    servers = [ctx.start_web(workers=1), ctx.start_web(workers=1)]
    try:
        rows += asyncio.run(_fan_out(ctx, servers, key, tickets))
    finally:
        for server in servers:
            server.stop()
    idle_key, idle_tickets = _setup(ctx, "chat-idle")
    for target, threads in IDLE_PROBES:
        more = {"GUNICORN_THREADS": str(threads), "GUNICORN_WORKER_CONNECTIONS": str(2 * threads)} if threads else {}
        server = ctx.start_web(workers=1, **more)
        try:
            rows += asyncio.run(_idle(ctx, server, idle_key, idle_tickets, target, threads))
        finally:
            server.stop()
    return rows


def _setup(ctx: BenchContext, prefix: str) -> tuple[str, list[str]]:
    slug = f"{prefix}-{uuid.uuid4().hex[:6]}"
    key = ctx.signup(slug)
    client = ctx.app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    tickets = [client.post("/api/v1/tickets", json={"title": f"chat {i}"}, headers=headers).get_json()["id"]
               for i in range(TICKETS)]
    return key, tickets


def _bare_publish(ctx: BenchContext, rounds: int = 2000) -> list[Row]:
    """Time PUBLISH -> a subscriber thread's receipt, one message at a time."""
    client = redis.Redis.from_url(ctx.redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("bench:bare")
    got = threading.Event()
    arrived: list[float] = []

    def listen() -> None:
        for message in pubsub.listen():
            if message["data"] == b"stop":
                return
            arrived.append(time.perf_counter())
            got.set()

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    time.sleep(0.2)
    samples = []
    for _ in range(rounds):
        got.clear()
        start = time.perf_counter()
        client.publish("bench:bare", "x")
        got.wait(2)
        samples.append((arrived[-1] - start) * 1000)
    client.publish("bench:bare", "stop")
    thread.join(2)
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    ctx.baselines.update(redis_publish_p50_ms=p50, redis_publish_p99_ms=p99)
    return [Row("bare Redis PUBLISH -> subscriber p50", p50, "ms", aim="floor"),
            Row("bare Redis PUBLISH -> subscriber p99", p99, "ms", aim="floor")]


class Socket:
    """One benchmark socket and what it received."""

    def __init__(self, ws: AsyncWebSocket, ticket: int, sender: bool) -> None:
        self.ws = ws
        self.ticket = ticket
        self.sender = sender
        self.latencies: list[float] = []
        self.acked = asyncio.Event()
        self.in_flight = 0
        self.received = 0
        self.warm = asyncio.Event()

    async def read(self) -> None:
        try:
            while True:
                event = json.loads(await self.ws.recv())
                if event.get("type") != "message.created":
                    continue
                now = time.monotonic()
                body = json.loads(event["message"]["body"])
                if body.get("warmup"):
                    self.warm.set()
                elif self.sender:
                    self.latencies.append((now - body["t"]) * 1000)
                    self.in_flight -= 1
                    self.acked.set()
                else:
                    self.latencies.append((now - body["t"]) * 1000)
                    self.received += 1
        except (Closed, ConnectionError):
            return


async def _connect(server, ticket_id: str, key: str) -> AsyncWebSocket:
    url = urlsplit(server.base_url)
    return await AsyncWebSocket.connect(url.hostname, url.port, f"/api/v1/tickets/{ticket_id}/stream",
                                        {"Authorization": f"Bearer {key}"})


def _frame(**body) -> str:
    return json.dumps({"type": "message", "body": json.dumps(body)})


async def _fan_out(ctx: BenchContext, servers, key: str, tickets: list[str]) -> list[Row]:
    """200 sockets on 20 tickets, alternating between the two processes."""
    sockets = []
    for t, ticket_id in enumerate(tickets):
        for j in range(SOCKETS_PER_TICKET):
            # Senders alternate between the processes too, so each stores half the messages.
            ws = await _connect(servers[(t + j) % 2], ticket_id, key)
            sockets.append(Socket(ws, t, sender=(j == 0)))
    readers = [asyncio.create_task(s.read()) for s in sockets]
    senders = [s for s in sockets if s.sender]
    receivers = [s for s in sockets if not s.sender]
    # Every socket has subscribed once it sees a message sent after it connected.
    for s in senders:
        s.ws.send(_frame(warmup=True))
    await asyncio.wait_for(asyncio.gather(*(s.warm.wait() for s in sockets)), 30)

    async def paced(sender: Socket, seconds: float) -> int:
        # Each sender starts at its own random phase, as people do, rather than all in one burst.
        interval, sent = 1 / PACED_PER_TICKET, 0
        await asyncio.sleep(random.uniform(0, interval))
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            sender.ws.send(_frame(t=time.monotonic()))
            sent += 1
            await asyncio.sleep(max(start + sent * interval - time.monotonic(), 0))
        return sent

    sent = sum(await asyncio.gather(*(paced(s, ctx.duration) for s in senders)))
    expected = sent * (SOCKETS_PER_TICKET - 1)
    await _until(lambda: sum(r.received for r in receivers) >= expected, 30)
    latencies = [x for r in receivers for x in r.latencies]
    stored = [x for s in senders for x in s.latencies]
    delivered_paced = sum(r.received for r in receivers)
    for r in sockets:
        r.latencies.clear()
        r.received = 0

    async def flat_out(sender: Socket, seconds: float) -> int:
        sent, start = 0, time.monotonic()
        while time.monotonic() - start < seconds:
            while sender.in_flight >= IN_FLIGHT:
                sender.acked.clear()
                await sender.acked.wait()
            sender.in_flight += 1
            sender.ws.send(_frame(t=time.monotonic()))
            sent += 1
        return sent

    for s in senders:
        s.in_flight = 0
    start = time.monotonic()
    sent_flat = sum(await asyncio.gather(*(flat_out(s, ctx.duration) for s in senders)))
    await _until(lambda: sum(r.received for r in receivers) >= sent_flat * (SOCKETS_PER_TICKET - 1), 60)
    elapsed = time.monotonic() - start
    delivered = sum(r.received for r in receivers)
    flat_latencies = [x for r in receivers for x in r.latencies]
    for s in sockets:
        await s.ws.close()
    for task in readers:
        task.cancel()
    base_p50 = ctx.baselines.get("redis_publish_p50_ms")
    base_p99 = ctx.baselines.get("redis_publish_p99_ms")
    setting = f"{len(sockets)} sockets, {TICKETS} tickets, 2 processes"
    return [
        Row("chat delivery send->receipt p50", percentile(latencies, 50), "ms", "bare Redis PUBLISH p50", base_p50,
            note=f"{setting}; {PACED_PER_TICKET * TICKETS} msg/s stored, {delivered_paced} deliveries"),
        Row("chat delivery send->receipt p99", percentile(latencies, 99), "ms", "bare Redis PUBLISH p99", base_p99,
            aim="< 25 ms", note=f"of which storing (send->sender's own echo): p50 {percentile(stored, 50):.1f} ms, "
                                f"p99 {percentile(stored, 99):.1f} ms"),
        Row("chat deliveries per second (flat out)", delivered / elapsed, "msg/s",
            note=f"{setting}; {sent_flat / elapsed:.0f} messages stored/s, each to "
                 f"{SOCKETS_PER_TICKET - 1} sockets; p99 under load {percentile(flat_latencies, 99):.1f} ms"),
    ]


async def _until(done, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def _idle(ctx: BenchContext, server, key: str, tickets: list[str], target: int,
                threads: int | None) -> list[Row]:
    """Open `target` idle sockets on one process; count those that still deliver a message."""
    worker = server.worker_pids()[0]
    rss_before = rss_mb(worker)
    sockets: list[AsyncWebSocket] = []
    semaphore = asyncio.Semaphore(50)
    failures: list[str] = []

    async def one(i: int) -> None:
        async with semaphore:
            try:
                sockets.append(await _connect(server, tickets[i % len(tickets)], key))
            except Exception as exc:  # a refused or timed-out socket ends the count, not the run
                failures.append(repr(exc))

    await asyncio.gather(*(one(i) for i in range(target)))
    await asyncio.sleep(2)
    rss = rss_mb(worker)
    # Prove the sockets are live: one message per ticket, posted in-process, must reach every one.
    client = ctx.app.test_client()
    for ticket_id in tickets:
        client.post(f"/api/v1/tickets/{ticket_id}/messages", json={"body": "ping"},
                    headers={"Authorization": f"Bearer {key}"})

    async def got_one(ws: AsyncWebSocket) -> bool:
        try:
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if event.get("type") == "message.created":
                    return True
        except (TimeoutError, Closed, ConnectionError):
            return False

    live = sum(await asyncio.gather(*(got_one(ws) for ws in sockets)))
    await asyncio.gather(*(ws.close() for ws in sockets))
    per_socket_kb = (rss - rss_before) * 1024 / max(live, 1)
    setting = f"GUNICORN_THREADS={threads}" if threads else "gunicorn.conf.py as shipped"
    note = f"{setting}; tried {target}; {len(failures)} refused/failed" + (f" ({failures[0]})" if failures else "")
    return [
        Row("idle sockets one process holds (all delivering)", live, "sockets", aim=">= 1000", note=note),
        Row(f"RSS of that process at {live} sockets", rss, "MiB", "RSS with no sockets", rss_before,
            note=f"{per_socket_kb:.0f} KiB per socket (gthread: 2 threads per socket)"),
    ]
