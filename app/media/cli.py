"""`flask media quota`: the operator's per-tenant storage quota."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from app.extensions import db
from tenants import active_tenant, tenant_context


def init_app(app: Flask) -> None:
    app.cli.add_command(media)


media = AppGroup("media", help="Media storage.")


@media.command("sweep")
@click.option("--older-than-hours", default=1.0, show_default=True, help="Leave anything younger alone.")
def sweep(older_than_hours: float) -> None:
    """Delete what storage holds for no attachment (a killed upload's) in every active tenant; the relay
    does it every MEDIA_SWEEP_HOURS too."""
    from datetime import timedelta

    from app.media import services
    from app.outbox.dispatch import Chore, run_chore

    if older_than_hours < 1:
        raise click.BadParameter("at least 1: an upload in progress must not be swept away",
                                 param_hint="--older-than-hours")
    swept = run_chore(Chore("media sweep", lambda: 0.0,
                            lambda: services.sweep_leftovers(timedelta(hours=older_than_hours))))
    click.echo(f"{swept} leftovers deleted")


@media.command("quota")
@click.argument("slug")
@click.argument("size", required=False)
def quota(slug: str, size: str | None) -> None:
    """Show a tenant's storage use, or set its quota to SIZE bytes ("default": the instance's)."""
    from app.media import services

    tenant = active_tenant(slug)
    db.session.rollback()
    if tenant is None:
        raise click.ClickException(f"no active tenant {slug!r}")
    with tenant_context(tenant.ref()):
        if size is not None:
            if size != "default" and not size.isdigit():
                raise click.BadParameter("a number of bytes, or default", param_hint="SIZE")
            services.set_quota(None if size == "default" else int(size))
            db.session.commit()
        found = services.limits()
        db.session.rollback()
    click.echo(f"{slug}: {found.used} of {found.quota} bytes used")
