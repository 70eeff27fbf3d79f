"""`flask outbox relay` and `flask worker`."""

from __future__ import annotations

import time

import click
import redis
from flask import Flask, current_app
from flask.cli import AppGroup
from rq import SimpleWorker
from rq.exceptions import StopRequested

from app.extensions import redis_client
from app.queues import QUEUES


def init_app(app: Flask) -> None:
    app.cli.add_command(outbox)
    app.cli.add_command(worker)


outbox = AppGroup("outbox", help="The transactional outbox.")


@outbox.command("relay")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between sweeps.")
@click.option("--once", is_flag=True, help="Sweep once and exit.")
def relay(interval: float, once: bool) -> None:
    """Hand overdue outbox rows of every tenant to RQ (after a Redis outage or a killed worker)."""
    from app.outbox.dispatch import relay_forever, relay_once

    if once:
        click.echo(f"enqueued {relay_once()} rows")
    else:
        relay_forever(interval)


@outbox.command("given-up")
def given_up() -> None:
    """List the outbox rows given up after OUTBOX_MAX_ATTEMPTS failed runs, with their last error."""
    from app.outbox.dispatch import given_up_rows

    rows = given_up_rows()
    for slug, row in rows:
        click.echo(f"{slug}\t{row.id}\t{row.handler}\t{row.attempts} runs\t{row.given_up_at:%Y-%m-%d %H:%M}\t"
                   f"{(row.last_error or '').splitlines()[0] if row.last_error else ''}")
    click.echo(f"{len(rows)} rows given up", err=True)


@outbox.command("retry")
@click.argument("slug")
@click.option("--row", "row_id", type=int, help="Only this row (default: every row of the tenant given up).")
def retry(slug: str, row_id: int | None) -> None:
    """Run given-up outbox rows of tenant SLUG again (once what made them fail is fixed): the relay hands them on."""
    from app.outbox.dispatch import retry_given_up
    from tenants import is_slug

    if not is_slug(slug):
        raise click.BadParameter("not a tenant slug", param_hint="SLUG")
    count = retry_given_up(slug, row_id)
    if count is None:
        raise click.ClickException(f"no active tenant {slug}")
    click.echo(f"{count} rows of {slug} will run again")


@click.command("worker")
@click.option("--queues", default=",".join(QUEUES), show_default=True)
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
def worker(queues: str, burst: bool) -> None:
    """Run an RQ worker in this process (no fork per job, so the app stays warm).

    If Redis cannot be reached (at start, or later when RQ gives up), the worker waits and starts
    again instead of exiting: the work is safe in the outbox meanwhile. RQ also quits its loop,
    without raising, on an error it does not handle, such as Redis going away while it finishes a
    job; only a stop that was asked for (a signal) or the end of a burst ends this command.
    """
    from app.worker import use_app

    use_app(current_app._get_current_object())
    delay = 0.5
    while True:
        try:
            # Made inside: RQ names its connection to Redis as it makes a worker, which fails while Redis is away.
            rq_worker = _Worker(queues.split(","), connection=redis_client())
            rq_worker.work(burst=burst, with_scheduler=True)
            if burst or rq_worker.asked_to_stop:
                return
            why = "RQ stopped on an error (logged above)"
        except redis.ConnectionError as exc:
            why = f"Redis unavailable ({exc})"
        click.echo(f"worker: {why}; trying again in {delay:.0f} s", err=True)
        try:
            time.sleep(delay)
        except StopRequested:  # a signal while waiting, taken by the last run's handler
            return
        delay = min(delay * 2, 10.0)


class _Worker(SimpleWorker):
    """RQ's worker, remembering whether a signal asked it to stop (RQ's loop also ends on errors)."""

    asked_to_stop = False

    def request_stop(self, signum, frame) -> None:
        self.asked_to_stop = True
        super().request_stop(signum, frame)
