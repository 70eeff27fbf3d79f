"""Real RQ worker processes (`flask worker`) for the assignment tests, and waiting on the database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_worker(database_url: str, redis_url: str, log_dir: Path, name: str) -> subprocess.Popen:
    """Start `flask worker --queues assignment` against the test database and Redis."""
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret"}
    log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--queues", "assignment"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def stop_worker(proc: subprocess.Popen) -> None:
    """Stop a worker politely, or kill it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_until(check: Callable[[], bool], what: str, timeout: float = 90, every: float = 0.1) -> None:
    """Poll `check` until it is true; fail with `what` if it never is (a hang guard, not a timing test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"gave up waiting: {what}")
