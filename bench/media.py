"""Media figures: upload throughput, scan latency, and the web process's memory under big uploads.

Throughput: a 20 MiB file uploaded to gunicorn (local backend, one worker process) from this
process over loopback, MB/s from the first byte sent to the 202; beside it, a plain write of the
same bytes to a file in the same folder with an fsync (the upload fsyncs too), in the same run.
A second row puts the upload beside gunicorn itself reading the same body and throwing it away
(the bare app's `/sink`): no upload through this server can be faster than that.

Scan latency: 1 MiB JPEGs uploaded one at a time while one `flask worker --queues media` runs
beside a clamd of ours (the test signature database; real definitions make clamd slower); each
latency is from the 202 to the `attachment.updated` event saying `clean`, heard on the ticket's
live channel. If clamd is not installed, antivirus is off and the note says so.

Memory: the peak RSS (VmHWM) of the single gunicorn worker process while 10 clients upload 20 MiB
each at once, beside its peak while 10 clients upload 1 MiB each, measured first: a streamed
upload's memory does not depend on the file's size, so the two should be close.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis
from PIL import Image

from bench.common import ROOT, BenchContext, Row, median, percentile

MiB = 1024 * 1024
UPLOADS = int(os.environ.get("BENCH_MEDIA_UPLOADS", "5"))
SCANS = int(os.environ.get("BENCH_MEDIA_SCANS", "40"))
BOUNDARY = "bench-boundary"


def run(ctx: BenchContext) -> list[Row]:
    media_dir = ctx.work_dir / "media"
    clamd = _start_clamd(ctx)
    env = {"MEDIA_LOCAL_DIR": str(media_dir), "WEB_CONCURRENCY": "1"}
    env |= {"CLAMD_SOCKET": clamd.socket_path} if clamd else {"MEDIA_ANTIVIRUS": "off"}
    server = ctx.start_web(workers=1, **{k: v for k, v in env.items() if k != "WEB_CONCURRENCY"})
    try:
        slug = f"media-{uuid.uuid4().hex[:6]}"
        key = ctx.signup(slug)
        ticket = _ticket(server.base_url, key)
        rows = _throughput(ctx, server.base_url, key, ticket, media_dir)
        rows += _memory(server, key, ticket)
        rows += _scan_latency(ctx, server.base_url, key, ticket, slug, env, clamd is not None)
    finally:
        server.stop()
        if clamd:
            clamd.stop()
    return rows


def _start_clamd(ctx: BenchContext):
    from app.embedded import EmbeddedClamd, clamd_program

    if clamd_program() is None:
        return None
    # A short folder: a unix socket's path is limited to about 100 characters.
    return EmbeddedClamd(Path(tempfile.mkdtemp(prefix="tms-bench-clamd-"))).start()


def _ticket(base_url: str, key: str) -> str:
    status, body = _request(base_url, "POST", "/api/v1/tickets", key, json.dumps({"title": "Media bench"}).encode(),
                            "application/json")
    assert status == 201, body
    return body["id"]


def _request(base_url: str, method: str, path: str, key: str, body: bytes | None = None,
             content_type: str | None = None) -> tuple[int, dict]:
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    headers = {"Authorization": f"Bearer {key}"}
    if content_type:
        headers["Content-Type"] = content_type
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data) if data else {}


def _multipart(data: bytes, filename: str) -> bytes:
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"\r\n").encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def _upload(base_url: str, key: str, ticket: str, body: bytes) -> tuple[float, dict]:
    start = time.perf_counter()
    status, answer = _request(base_url, "POST", f"/api/v1/tickets/{ticket}/attachments", key, body,
                              f"multipart/form-data; boundary={BOUNDARY}")
    elapsed = time.perf_counter() - start
    assert status == 202, answer
    return elapsed, answer


def _payload(size: int) -> bytes:
    line = b"2026-12-02T10:00:00Z printer-7 paper jam in tray 2; retrying the job\n"
    return (line * (size // len(line) + 1))[:size]


def _throughput(ctx: BenchContext, base_url: str, key: str, ticket: str, media_dir: Path) -> list[Row]:
    data = _payload(20 * MiB)
    body = _multipart(data, "server.log")
    uploads = [20 * MiB / MiB / _upload(base_url, key, ticket, body)[0] for _ in range(UPLOADS)]
    bare = ctx.start_web("bench.bare_app:app", workers=1)
    sinks = []
    for _ in range(UPLOADS):
        start = time.perf_counter()
        status, _ = _request(bare.base_url, "POST", "/sink", "", body, f"multipart/form-data; boundary={BOUNDARY}")
        assert status == 202
        sinks.append(20 * MiB / MiB / (time.perf_counter() - start))
    bare.stop()
    media_dir.mkdir(parents=True, exist_ok=True)
    writes = []
    for _ in range(UPLOADS):
        target = media_dir / f"plain-{uuid.uuid4().hex}"
        start = time.perf_counter()
        with open(target, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        writes.append(20 * MiB / MiB / (time.perf_counter() - start))
        target.unlink()
    note = (f"median of {UPLOADS}; multipart over loopback to gunicorn (1 worker), SHA-256, type sniff, fsync, "
            f"row + outbox in one commit")
    return [Row("media: upload of a 20 MiB file, local backend", median(uploads), "MiB/s",
                "plain write + fsync of the same bytes", median(writes), aim=">= 50% of the plain write", note=note),
            Row("media: upload of a 20 MiB file, local backend", median(uploads), "MiB/s",
                "gunicorn reading the body, discarding it", median(sinks), aim="context: the server's ceiling")]


def _vm(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _parallel(base_url: str, key: str, ticket: str, body: bytes, n: int) -> None:
    errors: list[BaseException] = []

    def one() -> None:
        try:
            _upload(base_url, key, ticket, body)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _memory(server, key: str, ticket: str) -> list[Row]:
    (worker,) = server.worker_pids()
    idle = _vm(worker, "VmRSS")
    _parallel(server.base_url, key, ticket, _multipart(_payload(1 * MiB), "small.log"), 10)
    small_peak = _vm(worker, "VmHWM")
    _parallel(server.base_url, key, ticket, _multipart(_payload(20 * MiB), "big.log"), 10)
    big_peak = _vm(worker, "VmHWM")
    return [Row("media: peak RSS of the web process, 10 parallel 20 MiB uploads", big_peak, "MiB",
                "same, 10 parallel 1 MiB uploads (run first)", small_peak, aim="does not grow with file size",
                note=f"gunicorn worker's VmHWM; {idle:.0f} MiB idle before both; 200 MiB were in flight")]


def _jpeg_of_about(size: int) -> bytes:
    side = 600
    while True:
        out = io.BytesIO()
        Image.effect_noise((side, side), 80).convert("RGB").save(out, "JPEG", quality=92)
        if out.tell() >= size:
            return out.getvalue()
        side += 100


def _scan_latency(ctx: BenchContext, base_url: str, key: str, ticket: str, slug: str, env: dict[str, str],
                  antivirus: bool) -> list[Row]:
    from app.extensions import db
    from app.realtime import channel
    from tenants.resolution import active_tenant

    with ctx.app.app_context():
        tenant_id = str(active_tenant(slug).id)
        db.session.rollback()
    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--queues", "media"],
                              cwd=ROOT, env=ctx.env(**env), stdout=subprocess.DEVNULL,
                              stderr=open(ctx.work_dir / "media-worker.log", "wb"))  # noqa: SIM115
    listener = redis.Redis.from_url(ctx.redis_url).pubsub()
    listener.subscribe(channel(tenant_id, ticket))
    listener.get_message(timeout=2)
    image = _jpeg_of_about(1 * MiB)
    body = _multipart(image, "photo.jpg")
    latencies = []
    try:
        for _ in range(SCANS + 2):  # the first two warm the worker up and are not counted
            _, answer = _upload(base_url, key, ticket, body)
            accepted = time.perf_counter()
            deadline = accepted + 120
            while time.perf_counter() < deadline:
                message = listener.get_message(timeout=1)
                if not message or message["type"] != "message":
                    continue
                event = json.loads(message["data"])
                found = event.get("attachment", {})
                if found.get("id") == answer["id"] and found.get("status") != "pending":
                    assert found["status"] == "clean", found
                    latencies.append((time.perf_counter() - accepted) * 1000)
                    break
            else:
                raise RuntimeError("a scan did not finish within 120 s")
    finally:
        worker.terminate()
        worker.wait(20)
        listener.close()
    latencies = latencies[2:]
    note = (f"{len(latencies)} JPEGs of {len(image) / MiB:.2f} MiB one at a time, 1 worker; type, "
            + ("clamd (test signatures), " if antivirus else "ANTIVIRUS OFF (clamd not installed), ")
            + "re-encode + thumbnail, 2 storage writes, commit, event")
    return [Row("media: scan latency of a 1 MiB JPEG, 202 -> clean, p50", percentile(latencies, 50), "ms"),
            Row("media: scan latency of a 1 MiB JPEG, 202 -> clean, p95", percentile(latencies, 95), "ms",
                note=note)]
