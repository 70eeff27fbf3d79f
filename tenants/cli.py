"""`flask tenants list|migrate|suspend|drop` and `flask db-upgrade`.

`tenants create` is added to this group by the app's signup area, which owns what a new
organization gets besides its schema (an admin and a first key).
"""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup

from tenants import migrations, provisioning
from tenants.database import db

tenants = AppGroup("tenants", help="Manage tenants (one Postgres schema each).")


def init_app(app: Flask) -> None:
    app.cli.add_command(tenants)
    app.cli.add_command(db_upgrade)


@click.command("db-upgrade")
def db_upgrade() -> None:
    """Bring the public schema, then every tenant schema, to head."""
    migrations.upgrade_public(db.engine)
    _migrate_all(workers=4, progress=False)


@tenants.command("list")
def list_() -> None:
    """List tenants with their status and schema revision."""
    for tenant in provisioning.all_tenants():
        with db.engine.connect() as conn:
            revision = migrations.tenant_revision(conn, tenant.schema_name)
        click.echo(f"{tenant.slug:40} {tenant.status:10} {tenant.schema_name:50} {revision}")


@tenants.command("migrate")
@click.option("--workers", default=4, show_default=True, help="Schemas migrated at once.")
@click.option("--progress/--no-progress", default=True)
def migrate(workers: int, progress: bool) -> None:
    """Bring every tenant schema to head in parallel; failures are reported, not fatal to others."""
    migrations.upgrade_public(db.engine)
    failed = _migrate_all(workers, progress)
    sys.exit(1 if failed else 0)


def _migrate_all(workers: int, progress: bool) -> int:
    schemas = [t.schema_name for t in provisioning.all_tenants()]
    db.session.rollback()
    report = migrations.upgrade_all_tenants(db.engine, schemas, workers=workers, progress=progress)
    click.echo(f"{len(report.upgraded)} upgraded, {len(report.current)} already at head, "
               f"{len(report.failed)} failed")
    for schema, error in sorted(report.failed.items()):
        click.echo(f"FAILED {schema}: {error}", err=True)
    return len(report.failed)


@tenants.command("suspend")
@click.argument("slug")
@click.option("--undo", is_flag=True, help="Reactivate instead.")
def suspend(slug: str, undo: bool) -> None:
    """Suspend a tenant: its UI and API answer 404 until reactivated."""
    if provisioning.set_status(slug, "active" if undo else "suspended") is None:
        raise click.ClickException(f"no tenant {slug!r}")
    db.session.commit()
    click.echo(f"{slug} {'reactivated' if undo else 'suspended'}")


@tenants.command("drop")
@click.argument("slug")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def drop(slug: str, yes: bool) -> None:
    """Delete a tenant and all of its data."""
    if not yes:
        click.confirm(f"Drop {slug} and all of its data?", abort=True)
    if not provisioning.drop_tenant(slug):
        raise click.ClickException(f"no tenant {slug!r}")
    db.session.commit()
    click.echo(f"dropped {slug}")
