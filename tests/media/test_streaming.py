"""Uploads over a real socket to the app in gunicorn: the 413 arrives while the client is still
sending, and a client that vanishes mid-upload leaves nothing behind."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import sqlalchemy as sa

from app.media.models import Attachment
from tests.helpers import new_ticket, wait_until

MiB = 1024 * 1024
BOUNDARY = "x-tms-boundary"


def request_head(server, ticket_id: str, key: str, length: int | None = None) -> bytes:
    framing = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    return (f"POST /api/v1/tickets/{ticket_id}/attachments HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"{framing}\r\n").encode()


def part_head(filename: str = "big.txt") -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"Content-Type: text/plain\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def read_response(conn: socket.socket) -> tuple[int, dict]:
    raw = b""
    while b"\r\n\r\n" not in raw:
        raw += conn.recv(65536)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += conn.recv(65536)
    return status, json.loads(body)


def test_the_413_arrives_while_the_client_is_still_sending(tenant, media, live_server, in_tenant):
    assert tenant.api.patch("/api/v1/media/settings", json={"max_size": 2 * MiB}).status_code == 200
    ticket = new_ticket(tenant.api)
    line = b"the printer is on fire again, and again, and again\n" * 1000
    sent = 0
    pending = b""
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as conn:
        conn.sendall(request_head(live_server, ticket["id"], tenant.key) + chunk(part_head()))
        conn.setblocking(False)
        while sent < 200 * MiB:  # a client that would send 200 MiB if nobody stopped it
            pending = pending or chunk(line)
            try:
                written = conn.send(pending)  # may take part of a chunk: the rest goes next turn
                sent, pending = sent + written, pending[written:]
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                break  # the server stopped reading; its answer may be waiting already
            try:
                if conn.recv(1, socket.MSG_PEEK):
                    break
            except BlockingIOError:
                time.sleep(0.001)
        conn.setblocking(True)
        status, body = read_response(conn)
    assert status == 413 and body["code"] == 413 and "2 MiB" in body["message"]
    assert sent < 20 * MiB  # stopped within a few socket buffers of the limit, not at the end
    with in_tenant(tenant) as session:
        assert session.execute(sa.select(sa.func.count()).select_from(Attachment)).scalar_one() == 0


def test_a_declared_length_over_the_limit_is_refused_before_any_body(tenant, media, live_server):
    ticket = new_ticket(tenant.api)
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as conn:
        conn.sendall(request_head(live_server, ticket["id"], tenant.key, length=500 * MiB))
        status, body = read_response(conn)
    assert status == 413 and body["code"] == 413


def test_a_client_that_vanishes_mid_upload_leaves_nothing(tenant, media, live_server, in_tenant, services):
    ticket = new_ticket(tenant.api)
    folder = Path(services.media_dir)
    before = {p for p in folder.rglob("*")} if folder.exists() else set()
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as conn:
        conn.sendall(request_head(live_server, ticket["id"], tenant.key, length=3 * MiB) + part_head()
                     + b"half of it\n" * 100_000)
        wait_until(lambda: any(p.name.endswith(".part") for p in folder.rglob("*")) if folder.exists() else False,
                   "the server to start storing the upload", every=0.05)
    wait_until(lambda: not any(p.name.endswith(".part") for p in folder.rglob("*")),
               "the server to drop the half-written file", every=0.05)
    assert {p for p in folder.rglob("*") if p.is_file()} == {p for p in before if p.is_file()}
    with in_tenant(tenant) as session:
        assert session.execute(sa.select(sa.func.count()).select_from(Attachment)).scalar_one() == 0
