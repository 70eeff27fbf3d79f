"""The shared benchmark context: real servers, the product under gunicorn, wrk, result rows.

Every row names a baseline measured in the same run on the same machine, and the table shows
the ratio, because absolute figures on a shared 2-core machine drift from run to run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from app.embedded import free_port, start_missing, stop_process

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One figure, optionally beside its same-run baseline."""

    name: str
    value: float
    unit: str
    baseline_name: str | None = None
    baseline_value: float | None = None
    aim: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if not self.baseline_value:
            return None
        return self.value / self.baseline_value


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int


@dataclass
class Server:
    """A gunicorn process serving an app on loopback."""

    base_url: str
    proc: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.proc.pid

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 20)


def rss_mb(pid: int) -> float:
    """Return the resident set size of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed_with_peak_rss(pids: list[int], work: Callable[[], T]) -> tuple[T, float, float, float]:
    """Run `work` while sampling the processes' resident memory every 50 ms.

    Return its result, its seconds, and the largest RSS (MiB) of any of them before and during it.
    """
    idle = max(rss_mb(p) for p in pids)
    peak = idle
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, *(rss_mb(p) for p in pids))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        result = work()
    finally:
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
    return result, seconds, idle, peak


def percentile(values: list[float], pct: float) -> float:
    """Return the pct-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values)


@dataclass
class BenchContext:
    """Servers and helpers for one benchmark run."""

    database_url: str
    redis_url: str
    work_dir: Path
    duration: int = 10
    baselines: dict[str, float] = field(default_factory=dict)
    _servers: list[Server] = field(default_factory=list)
    _app: Any = None

    def env(self, **extra: str) -> dict[str, str]:
        """Return the environment for a child process of the product."""
        return {**os.environ, "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url,
                "SECRET_KEY": "bench", "RATE_LIMIT_PER_MINUTE": "100000000",
                "RATE_LIMIT_PER_TENANT_PER_MINUTE": "100000000", "STREAM_MAX_SOCKETS_PER_KEY": "100000",
                "STREAM_MAX_SOCKETS_PER_USER": "100000", "STREAM_MAX_SOCKETS_PER_TENANT": "100000",
                "PYTHONPATH": str(ROOT),
                **extra}

    @property
    def app(self):
        """The product's Flask app bound to the bench database (for in-process setup)."""
        if self._app is None:
            from app import create_app

            self._app = create_app({"SQLALCHEMY_DATABASE_URI": self.database_url, "REDIS_URL": self.redis_url,
                                    "PASSWORD_HASH_FAST": True, "RATE_LIMIT_PER_MINUTE": 10**8,
                                    "RATE_LIMIT_PER_TENANT_PER_MINUTE": 10**8,
                                    "SECRET_KEY": "bench"})
        return self._app

    def signup(self, slug: str) -> str:
        """Create a tenant and return its admin API key."""
        resp = self.app.test_client().post("/api/v1/signup", json={
            "name": slug, "slug": slug, "admin_email": f"admin@{slug}.example", "admin_password": "benchmark-pw"})
        if resp.status_code != 201:
            raise RuntimeError(f"signup failed: {resp.get_json()}")
        return resp.get_json()["api_key"]

    def start_web(self, wsgi_app: str = "wsgi:app", workers: int = 2, **env: str) -> Server:
        """Start gunicorn with the product's settings (gunicorn.conf.py) and wait until it answers."""
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), wsgi_app],
            cwd=ROOT, env=self.env(PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY=str(workers), **env),
            stdout=subprocess.DEVNULL, stderr=open(self.work_dir / f"gunicorn-{port}.log", "wb"),  # noqa: SIM115
        )
        server = Server(f"http://127.0.0.1:{port}", proc)
        self._servers.append(server)
        deadline = time.monotonic() + 60
        probe = "/hello" if "bare_app" in wsgi_app else "/healthz"
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(server.base_url + probe, timeout=1)
                return server
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"gunicorn exited; see {self.work_dir}") from None
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer in 60 s")

    def wrk(self, url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
            body: str | None = None, lua: str | None = None, duration: int | None = None,
            connections: int = 32, threads: int = 2) -> WrkResult:
        """Load `url` from a separate wrk process on loopback and return its figures."""
        script = lua
        if script is None:
            lines = [f'wrk.method = "{method}"']
            for key, value in (headers or {}).items():
                lines.append(f'wrk.headers["{key}"] = "{value}"')
            if body is not None:
                lines.append(f"wrk.body = {json.dumps(body)}")
            script = "\n".join(lines)
        path = self.work_dir / f"wrk-{time.monotonic_ns()}.lua"
        path.write_text(script)
        out = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration or self.duration}s",
             "--latency", "-s", str(path), url],
            capture_output=True, text=True, check=True,
        ).stdout
        return parse_wrk(out)

    def close(self) -> None:
        for server in self._servers:
            server.stop()


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def start_relay(ctx: BenchContext) -> subprocess.Popen:
    """Start `flask outbox relay` and wait until it listens: a new ticket wakes it (NOTIFY) once committed."""
    import sqlalchemy as sa

    from app.outbox import WAKE_CHANNEL

    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "outbox", "relay"], cwd=ROOT,
                            env=ctx.env(), stdout=subprocess.DEVNULL,
                            stderr=open(ctx.work_dir / f"relay-{time.monotonic_ns()}.log", "wb"))  # noqa: SIM115
    engine = sa.create_engine(ctx.database_url, pool_size=1)
    try:
        deadline = time.monotonic() + 60
        while True:
            with engine.connect() as conn:
                if conn.execute(sa.text("select count(*) from pg_stat_activity where query = :q"),
                                {"q": f"LISTEN {WAKE_CHANNEL}"}).scalar():
                    return proc
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the relay did not start listening")
            time.sleep(0.1)
    finally:
        engine.dispose()


def parse_wrk(out: str) -> WrkResult:
    """Read requests/s and latency percentiles from wrk's --latency output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pcts = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)\s*$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    n_errors = int(errors.group(1)) if errors else 0
    if socket_errors:
        n_errors += sum(int(x) for x in socket_errors.groups())
    return WrkResult(rps=rps, p50_ms=_ms(pcts["50"]), p90_ms=_ms(pcts["90"]), p99_ms=_ms(pcts["99"]),
                     errors=n_errors)


def start_services(work_dir: Path) -> tuple[str, str, list]:
    """Start durable embedded Postgres + Redis (unless BENCH_DATABASE_URL / BENCH_REDIS_URL)."""
    return start_missing(work_dir, os.environ.get("BENCH_DATABASE_URL"), os.environ.get("BENCH_REDIS_URL"))


def new_work_dir() -> Path:
    base = Path(os.environ.get("DATA_DIR", ROOT / ".data")) / "bench"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="run-", dir=base))


def write_results(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{**asdict(r), "ratio": r.ratio} for r in rows], indent=2))


def format_table(rows: list[Row]) -> str:
    """Render rows as a fixed-width table."""
    header = f"{'figure':58} {'value':>12} {'unit':10} {'baseline (same run)':44} {'ratio':>7}  aim"
    lines = [header, "-" * len(header)]
    for r in rows:
        base = f"{r.baseline_name}: {r.baseline_value:.1f}" if r.baseline_name and r.baseline_value else ""
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else ""
        lines.append(f"{r.name:58} {r.value:12.1f} {r.unit:10} {base:44} {ratio:>7}  {r.aim}")
        if r.note:
            lines.append(f"{'':60}  {r.note}")
    return "\n".join(lines)
