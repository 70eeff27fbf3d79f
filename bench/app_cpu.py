"""The app's own CPU per request, in process: the product beside the bare app doing the same database work.

Throughput under wrk moves with the host's load from one run to the next. Here a child process
calls an app's WSGI callable in a loop, one request at a time, and reads its own CPU time: only
its work counts (Python, the drivers, the response; not Postgres, Redis or gunicorn, which is the
same for both), and the least of several batches leaves out what other load added. The product
and the bare app take turns, `ROUNDS` times each, and the least figure of each is reported.

Run as `python -m bench.app_cpu WSGI_APP METHOD PATH BODY KEY` (BODY `-` for none), it prints
microseconds per request.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import time

from bench.common import ROOT, BenchContext, Row

ROUNDS = 3
Request = tuple[str, str, str]  # method, path, JSON body or "-"
BATCHES, PER_BATCH, WARM_UP = 3, 1000, 200


def rows(ctx: BenchContext, shapes: list[tuple[str, Request, Request]], key: str) -> list[Row]:
    """Measure each (name, product request, bare request) shape and return its row."""
    found = []
    for name, product, bare in shapes:
        best = {"product": float("inf"), "bare": float("inf")}
        for _ in range(ROUNDS):
            for which, app, request in (("product", "wsgi:app", product), ("bare", "bench.bare_app:app", bare)):
                best[which] = min(best[which], _child(ctx, app, request, key))
        found.append(Row(f"app CPU a request, in process: {name}", best["product"], "us",
                         f"bare app: {bare[0]} {bare[1]}", best["bare"], aim="reported (lower is better)",
                         note=f"least of {ROUNDS} runs x {BATCHES} batches of {PER_BATCH}; ratio = product / bare"))
    return found


def _child(ctx: BenchContext, app: str, request: Request, key: str) -> float:
    out = subprocess.run([sys.executable, "-m", "bench.app_cpu", app, *request, key], cwd=ROOT, env=ctx.env(),
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{app} {request[0]} {request[1]}: {out.stderr.strip()[-1000:]}")
    return float(out.stdout.split()[-1])


def _main(app_path: str, method: str, path: str, body: str, key: str) -> None:
    from werkzeug.test import EnvironBuilder

    module, _, attribute = app_path.partition(":")
    app = getattr(importlib.import_module(module), attribute)
    base, _, query = path.partition("?")
    options = {} if body == "-" else {"data": body, "content_type": "application/json"}

    def environ() -> dict:
        return EnvironBuilder(path=base, query_string=query, method=method,
                              headers={"Authorization": f"Bearer {key}", "Host": "127.0.0.1"},
                              **options).get_environ()

    def call() -> None:
        status = []
        body_iter = app(environ(), lambda s, headers, exc_info=None: status.append(s))
        try:
            for _ in body_iter:
                pass
        finally:
            getattr(body_iter, "close", lambda: None)()
        if not status[0].startswith("2"):
            raise SystemExit(f"{method} {path} answered {status[0]}")

    for _ in range(WARM_UP):
        call()
    best = float("inf")
    for _ in range(BATCHES):
        start = time.process_time()
        for _ in range(PER_BATCH):
            call()
        best = min(best, (time.process_time() - start) / PER_BATCH)
    start = time.process_time()  # building the request is the harness's cost, not the app's
    for _ in range(PER_BATCH):
        environ()
    print(f"{(best - (time.process_time() - start) / PER_BATCH) * 1e6:.1f}")


if __name__ == "__main__":
    _main(*sys.argv[1:6])
