"""`make bench`: run every area's benchmark module and print one table (and write JSON)."""

from __future__ import annotations

import argparse
import importlib
import logging
import shutil
import traceback

from bench.common import ROOT, BenchContext, Row, format_table, new_work_dir, start_services, write_results

AREAS = ("foundation", "tickets", "assignment", "chat", "markdown", "media", "ui", "dashboard", "load")
# Run only when named (`make bench-scale`): half an hour and ~7 GB of disk.
SEPARATE = ("scale",)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="comma-separated areas (default: all): " + ",".join(AREAS)
                        + "; separately: " + ",".join(SEPARATE))
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    areas = args.only.split(",") if args.only else list(AREAS)
    work_dir = new_work_dir()
    database_url, redis_url, started = start_services(work_dir)
    ctx = BenchContext(database_url=database_url, redis_url=redis_url, work_dir=work_dir, duration=args.duration)
    rows: list[Row] = []
    try:
        from app.extensions import db
        from tenants.migrations import upgrade_public

        with ctx.app.app_context():
            upgrade_public(db.engine)
        if "foundation" not in areas:
            from bench.foundation import measure_baselines

            rows += measure_baselines(ctx)
        for area in areas:
            try:
                module = importlib.import_module(f"bench.{area}")
            except ModuleNotFoundError:
                print(f"(no bench.{area} module yet)")
                continue
            try:
                rows += module.run(ctx)
            except Exception:
                print(f"bench.{area} failed:\n{traceback.format_exc()}")
            print(format_table(rows), flush=True)
    finally:
        ctx.close()
        for server in reversed(started):
            server.stop()
        # The servers' data (gigabytes with a million tickets) goes; the processes' logs stay.
        for data in ("postgres", "redis"):
            shutil.rmtree(work_dir / data, ignore_errors=True)
        if "scale" in areas:
            shutil.rmtree(work_dir, ignore_errors=True)
    print()
    print(format_table(rows))
    out = ROOT / "bench" / "results" / "latest.json"
    write_results(rows, out)
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
