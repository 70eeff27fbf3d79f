"""Real servers for tests that need more than PostgreSQL and Redis: S3, clamd, the app in gunicorn,
and headless Chromium.

Each is a genuine program run as a child process of the test process, on a free loopback port or
a socket in its own temp folder, so every xdist worker has its own and nothing is shared between
workers. The fixtures are session-scoped and lazy: a server starts the first time a test of that
worker asks for it, and stops when the worker's session ends. `make test` installs the Debian
programs (clamav-daemon, chromium); moto and playwright come from requirements-dev.txt.

Registered as a plugin in tests/conftest.py, so every test can ask for:

- `s3_endpoint`: URL of moto's S3 server (any bucket name, any credentials);
- `clamd_socket` / `clamd_address`: clamd's unix socket path and (host, port), knowing EICAR;
- `live_server`: the app in gunicorn on the test database and Redis;
- `second_postgres`: the URL of another PostgreSQL server, a second shard;
- `browser`, `page`, `phone_page`, `screenshot`: Chromium, a fresh 1280- or 390-wide page per
  test, and a helper saving PNGs to SCREENSHOT_DIR (or a temp folder).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

import pytest

from app.embedded import EmbeddedClamd, EmbeddedPostgres, free_port, stop_process

ROOT = Path(__file__).resolve().parents[1]


def _wait_until(ready: Callable[[], bool], proc: subprocess.Popen, what: str, log: Path,
                timeout: float = 30) -> None:
    """Poll `ready` until it returns true; fail with the log's tail if `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}: {log.read_text()[-2000:]}")
        if ready():
            return
        time.sleep(0.05)
    stop_process(proc, signal.SIGKILL, 5)
    raise RuntimeError(f"{what} did not start within {timeout}s: {log.read_text()[-2000:]}")


def _answers_http(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


# --- S3 ----------------------------------------------------------------------------------------


@dataclass
class MotoServer:
    """moto's S3 (and every other AWS service it mocks) over real HTTP on a loopback port."""

    folder: Path
    port: int = 0
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self.port = free_port()
        log = self.folder / "moto.log"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_until(lambda: _answers_http(f"{self.endpoint}/moto-api/"), self.proc, "moto_server", log)
        return self

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 10)


# --- ClamAV ------------------------------------------------------------------------------------


class Clamd(EmbeddedClamd):
    """Debian's clamd in the foreground, on a unix socket and a loopback TCP port, with our own
    signatures (see `app.embedded.eicar_signatures`) in a temp database folder.

    It runs as whoever we are (root in CI): with no `User` line clamd keeps its user, and every
    file it reads or writes is in our own folder, so root and non-root work alike.
    """


# --- The app in gunicorn -----------------------------------------------------------------------


@dataclass
class LiveServer:
    """The product served by gunicorn (one worker) on a loopback port."""

    port: int
    process: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


S = TypeVar("S", bound=LiveServer)


def start_gunicorn(services, server_type: type[S] = LiveServer, **env_overrides: str) -> S:
    """Start the app in gunicorn on the test database and Redis; return once /healthz answers."""
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1",
           "GUNICORN_THREADS": "64", "DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url,
           "SECRET_KEY": "test-secret", "RATE_LIMIT_PER_MINUTE": "100000",
           "RATE_LIMIT_PER_TENANT_PER_MINUTE": "1000000", "SIGNUP_RATE_LIMIT_PER_HOUR": "100000",
           "KEY_FAILURES_PER_ADDRESS_PER_MINUTE": "100000",
           "STREAM_PING_INTERVAL": "5", "POOL_CHECKOUT_GUARD": "1",
           **({"MEDIA_LOCAL_DIR": services.media_dir} if services.media_dir else {}), **env_overrides}
    log = Path(tempfile.mkdtemp(prefix="tms-gunicorn-")) / f"gunicorn-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"], cwd=ROOT,
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    _wait_until(lambda: _answers_http(f"http://127.0.0.1:{port}/healthz"), process, "gunicorn", log)
    return server_type(port, process, log)


def stop_gunicorn(server: LiveServer) -> None:
    stop_process(server.process, signal.SIGINT, 15)  # quick shutdown: open sockets need no grace
    shutil.rmtree(server.log.parent, ignore_errors=True)


# --- Chromium ----------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
# Chromium's own background connections (updates, sync, QUIC probes) have nowhere to go on a
# closed network and only slow it down, so they are switched off.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True,
         "has_touch": True}


# --- Fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Return the URL of a real S3 API (moto's server) for this worker."""
    folder = Path(tempfile.mkdtemp(prefix="tms-moto-"))
    server = MotoServer(folder).start()
    yield server.endpoint
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def clamd() -> Iterator[Clamd]:
    """Return a running clamd that knows the EICAR test file."""
    folder = Path(tempfile.mkdtemp(prefix="tms-clamd-"))
    server = Clamd(folder).start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def clamd_socket(clamd: Clamd) -> str:
    """Return the path of clamd's unix socket."""
    return clamd.socket_path


@pytest.fixture(scope="session")
def clamd_address(clamd: Clamd) -> tuple[str, int]:
    """Return clamd's TCP (host, port) on loopback."""
    return clamd.address


@pytest.fixture(scope="session")
def second_postgres() -> Iterator[str]:
    """Return the URL of a PostgreSQL server of its own (another shard), started on first use."""
    folder = Path(tempfile.mkdtemp(prefix="tms-shard-"))
    server = EmbeddedPostgres(folder / "postgres", durable=False).start()
    yield server.url
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def live_server(app, services) -> Iterator[LiveServer]:
    """Return the app served by gunicorn, for browsers and other real HTTP clients."""
    server = start_gunicorn(services)
    yield server
    stop_gunicorn(server)


@pytest.fixture(scope="session")
def browser():
    """Return Debian's Chromium, headless, driven by Playwright (never `playwright install`)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """Return a page in a fresh 1280-wide browser context (no cookies from other tests)."""
    context = browser.new_context(**DESKTOP)
    yield context.new_page()
    context.close()


@pytest.fixture
def phone_page(browser):
    """Return a page in a fresh 390-wide phone context (touch, mobile viewport)."""
    context = browser.new_context(**PHONE)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    """Return SCREENSHOT_DIR (created if missing), or a temp folder when it is not set."""
    configured = os.environ.get("SCREENSHOT_DIR")
    if not configured:
        return tmp_path_factory.mktemp("screenshots")
    folder = Path(configured)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def screenshot(screenshot_dir: Path, request) -> Callable[..., Path]:
    """Return `shoot(page, name)`, which saves a full-page PNG named after the test and `name`."""

    def shoot(page, name: str) -> Path:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{request.node.name}-{name}")
        path = screenshot_dir / f"{stem}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return shoot


# --- RQ workers --------------------------------------------------------------------------------


def start_worker(database_url: str, redis_url: str, log_dir: Path, name: str, queues: str = "assignment",
                 **env_overrides: str) -> subprocess.Popen:
    """Start `flask worker --queues <queues>` against the test database and Redis.

    `env_overrides` configure it further (the media queue's storage and clamd, the webhooks queue's
    timeouts).
    """
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret",
           **env_overrides}
    log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--queues", queues],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def start_relay(database_url: str, redis_url: str, log_dir: Path, name: str = "relay",
                **env_overrides: str) -> subprocess.Popen:
    """Start `flask outbox relay`: it hands on the rows one-statement writes (a new ticket or message) announce."""
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret",
           **env_overrides}
    log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "outbox", "relay", "--interval", "0.5"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


# --- A webhook receiver ----------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """An HTTP server that records every request; `answer(n)` says how to respond to the n-th (0-based)."""

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    answer: Callable[[int], tuple[int, dict[str, str], bytes]] = lambda n: (200, {}, b"ok")
    stall: Callable[[int, BaseHTTPRequestHandler], bool] = lambda n, handler: False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            me = holder["r"]
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            n = len(me.requests)
            me.requests.append(Received(self.path, dict(self.headers.items()), body, time.time()))
            if me.stall(n, self):
                return
            status, headers, answer = me.answer(n)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder["r"] = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder["r"]
    server.shutdown()
    server.server_close()
