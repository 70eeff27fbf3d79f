"""Faults of the processes around the app: Postgres restarting under it, `make run`'s servers dying,
and `make run` itself being killed."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app import create_app
from app.embedded import EmbeddedPostgres, free_port, stop_process
from app.extensions import db
from tenants.migrations import upgrade_public
from tests.helpers import ApiClient, Services, app_config, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])


def test_a_postgres_restart_answers_503_fast_and_recovers_without_restarting_the_app(services):
    pg = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="tms-restart-")) / "pg", durable=False).start()
    try:
        app = create_app(app_config(Services(pg.url, services.redis_url)))
        with app.app_context():
            upgrade_public(db.engine)
        client = app.test_client()
        body = client.post("/api/v1/signup", json={"name": "R", "slug": f"restart-{time.time_ns() % 10**8}",
                                                   "admin_email": "a@r.example", "admin_password": "long password"})
        api = ApiClient(client, body.get_json()["api_key"])
        assert api.get("/api/v1/tickets").status_code == 200
        slug = body.get_json()["tenant"]["slug"]

        pid = _postmaster_pid(pg.data_dir)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _alive(pid), "the postmaster to die", timeout=30)
        for call in (lambda: api.get("/api/v1/tickets"), lambda: api.post("/api/v1/tickets", json={"title": "x"}),
                     lambda: client.get(f"/t/{slug}/login")):
            down = call()
            assert down.status_code == 503, down.data[:300]
            assert int(down.headers["Retry-After"]) > 0
        assert api.get("/api/v1/tickets").get_json()["code"] == 503

        wait_until(lambda: _restart(pg), "Postgres to start again on its port", timeout=60, every=1)
        wait_until(lambda: api.get("/api/v1/tickets").status_code == 200, "the app to serve again", timeout=30)
        assert api.post("/api/v1/tickets", json={"title": "after the restart"}).status_code == 201
    finally:
        pg.stop()


def _restart(pg: EmbeddedPostgres) -> bool:
    try:
        pg.start()  # the same port and data folder
        return True
    except RuntimeError:
        return False  # the dead postmaster's backends may still hold its shared memory for a moment


def _start_make_run(port: int, **settings: str) -> tuple[subprocess.Popen, Path, Path]:
    """Start `python -m app.runner` (what `make run` runs) in a folder of its own, with HOST left to its default."""
    data_dir = Path(tempfile.mkdtemp(prefix="tms-run-"))
    env = {**os.environ, "DATA_DIR": str(data_dir), "PORT": str(port), "WEB_CONCURRENCY": "1",
           "GUNICORN_THREADS": "8", "MEDIA_ANTIVIRUS": "off", "PYTHONUNBUFFERED": "1", **settings}
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "HOST"):
        env.pop(name, None)
    log = data_dir / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.runner"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return proc, data_dir, log


@pytest.fixture
def make_run():
    """`make run`'s runner, stopped or killed by the test."""
    port = free_port()
    proc, data_dir, log = _start_make_run(port)
    yield proc, f"http://127.0.0.1:{port}", data_dir, log
    stop_process(proc, signal.SIGTERM, 30)


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def test_make_run_restarts_its_servers_and_leaves_no_orphans_when_killed(make_run):
    proc, base, data_dir, log = make_run
    wait_until(lambda: _ready(base), f"make run to serve ({log})", timeout=240, every=1)
    # The demo's passwords are public: it listens on loopback only.
    assert _listening_addresses(int(base.rsplit(":", 1)[1])) == {"0100007F"}
    # What it wrote for commands beside it, for its owner only, runs the CLI against its servers.
    settings = data_dir / "env"
    assert settings.stat().st_mode & 0o777 == 0o600
    listed = subprocess.run(["bash", "-c", f"set -a; . {settings}; set +a; exec {sys.executable} -m flask "
                             "--app wsgi:app tenants list"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items()
                                 if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")})
    assert listed.returncode == 0 and "demo" in listed.stdout, listed.stderr

    pg_pid = _postmaster_pid(data_dir / "postgres")
    os.kill(pg_pid, signal.SIGKILL)
    wait_until(lambda: not _ready(base), "readyz to see Postgres gone", timeout=30)
    wait_until(lambda: _ready(base) and _postmaster_pid(data_dir / "postgres") != pg_pid,
               "the supervisor to start Postgres again", timeout=120, every=1)

    redis_port = int(re.search(r"EmbeddedRedis on port (\d+)", log.read_text()).group(1))
    redis_pid = _pid_listening(redis_port)
    os.kill(redis_pid, signal.SIGKILL)
    wait_until(lambda: _ready(base) and _pid_listening(redis_port) not in (None, redis_pid),
               "the supervisor to start Redis again", timeout=60, every=1)
    assert "starting it again" in log.read_text()

    worker_pid = next(pid for pid in _children(proc.pid) if b" worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
                      .replace(b"\0", b" "))
    os.kill(worker_pid, signal.SIGKILL)
    wait_until(lambda: "(worker) is back" in log.read_text(), "the supervisor to start the worker again",
               timeout=60)

    survivors = [_postmaster_pid(data_dir / "postgres"), _pid_listening(redis_port),
                 _pid_listening(int(base.rsplit(":", 1)[1]))]
    os.kill(proc.pid, signal.SIGKILL)  # no chance to clean up
    wait_until(lambda: not any(_alive(pid) for pid in survivors if pid), "every child to die with make run",
               timeout=30)


@pytest.mark.parametrize("trouble", ["a bad setting", "its port in use"])
def test_make_run_that_cannot_serve_stops_everything_with_a_non_zero_exit(trouble):
    """It exited 0 after a failed start-up step, and restarted a web server that could not bind in a loop."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1] if trouble == "its port in use" else free_port()
        settings = {"RATE_LIMIT_PER_MINUTE": "abc"} if trouble == "a bad setting" else {}
        proc, data_dir, log = _start_make_run(port, **settings)
        try:
            assert proc.wait(timeout=240) == 1, log.read_text()
        finally:
            stop_process(proc, signal.SIGTERM, 30)
    said = log.read_text()
    assert ("RATE_LIMIT_PER_MINUTE must be a whole number" in said if trouble == "a bad setting"
            else f"Port {port} is in use" in said), said
    assert "Serving on" not in said
    assert not [p for p in (data_dir / "postgres").glob("postmaster.pid")], "the embedded servers were stopped"


def _listening_addresses(port: int) -> set[str]:
    """Return the local addresses (hex, as /proc/net/tcp writes them) listening on a TCP port."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].rpartition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _pid_listening(port: int) -> int | None:
    """Return the pid of the process listening on a loopback TCP port (from /proc), or None."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(pid)
        except OSError:
            continue
    return None
