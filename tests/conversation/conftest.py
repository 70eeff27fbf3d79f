"""Live gunicorn servers for socket tests (the Flask test client cannot speak WebSocket).

Two separate gunicorn masters with one worker each, on the test database and Redis, so a test
knows which process holds which socket.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import websocket

ROOT = Path(__file__).resolve().parents[2]
OPEN_SOCKETS: list[websocket.WebSocket] = []


@pytest.fixture(autouse=True)
def close_sockets() -> Iterator[None]:
    """Close the sockets a test opened, so servers stop promptly and tests do not pile up sockets."""
    yield
    while OPEN_SOCKETS:
        OPEN_SOCKETS.pop().close()


@dataclass
class LiveServer:
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def connect(self, ticket_id: str, key: str | None = None, token: str | None = None,
                after_seq: int | None = None) -> websocket.WebSocket:
        query = []
        if token is not None:
            query.append(f"token={token}")
        if after_seq is not None:
            query.append(f"after_seq={after_seq}")
        url = f"{self.ws_base}/api/v1/tickets/{ticket_id}/stream" + ("?" + "&".join(query) if query else "")
        header = [f"Authorization: Bearer {key}"] if key else []
        ws = websocket.create_connection(url, header=header, timeout=5)
        OPEN_SOCKETS.append(ws)
        return ws


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(services, **env_overrides: str) -> LiveServer:
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1",
           "GUNICORN_THREADS": "64", "DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url,
           "SECRET_KEY": "test-secret", "RATE_LIMIT_PER_MINUTE": "100000", "STREAM_PING_INTERVAL": "5",
           **env_overrides}
    log_path = Path(tempfile.mkdtemp(prefix="tms-gunicorn-")) / f"gunicorn-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"], cwd=ROOT,
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("gunicorn exited: " + log_path.read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return LiveServer(port, process, log_path)
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("gunicorn did not start")


def stop_gunicorn(server: LiveServer) -> None:
    server.process.send_signal(signal.SIGINT)  # quick shutdown: open sockets need no grace
    try:
        server.process.wait(15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def live_servers(app, services) -> Iterator[list[LiveServer]]:
    servers = [start_gunicorn(services), start_gunicorn(services)]
    yield servers
    for server in servers:
        stop_gunicorn(server)


@pytest.fixture
def server_a(live_servers) -> LiveServer:
    return live_servers[0]


@pytest.fixture
def server_b(live_servers) -> LiveServer:
    return live_servers[1]


def next_event(ws: websocket.WebSocket, kind: str | None = None, timeout: float = 5.0) -> dict:
    """Return the next event (of `kind`, skipping others), waiting at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {kind or 'event'} within {timeout}s")
        ws.settimeout(left)
        # Control frames come back too (pings are answered on the way), so steady pings cannot
        # keep this waiting past the deadline.
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise ConnectionError("the server closed the socket")
        if opcode != websocket.ABNF.OPCODE_TEXT:
            continue
        event = json.loads(data)
        if kind is None or event["type"] == kind:
            return event
