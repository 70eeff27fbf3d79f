"""`flask tenants list|shards|migrate|move|suspend|drop` and `flask db-upgrade`.

`tenants create` is added to this group by the app's signup area, which owns what a new
organization gets besides its schema (an admin and a first key).
"""

from __future__ import annotations

import math
import sys
from contextlib import ExitStack

import click
import psycopg
import sqlalchemy as sa
from flask import Flask
from flask.cli import AppGroup

from tenants import migrations, provisioning
from tenants.database import UnknownShard, db, shard_engine
from tenants.moves import MoveFailed, move_tenant
from tenants.names import is_slug
from tenants.shards import shard_loads

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
    """List tenants with their status, shard and schema revision (one connection per shard)."""
    with ExitStack() as stack:
        shards: dict[str, sa.Connection | str] = {}
        for tenant in provisioning.all_tenants():
            if tenant.shard not in shards:
                shards[tenant.shard] = _reader(stack, tenant.shard)
            conn = shards[tenant.shard]
            revision = conn if isinstance(conn, str) else migrations.tenant_revision(conn, tenant.schema_name)
            click.echo(f"{tenant.slug:40} {tenant.status:10} {tenant.shard:12} {tenant.schema_name:50} {revision}")


def _reader(stack: ExitStack, shard: str) -> sa.Connection | str:
    """Return a connection to `shard` that `stack` closes, or why there is none (listed in its place).

    In autocommit: one transaction across every tenant's version table would hold a lock on each
    until the listing ends (thousands of tenants: the lock table fills, drops and moves wait).
    """
    try:
        return stack.enter_context(shard_engine(shard).execution_options(isolation_level="AUTOCOMMIT").connect())
    except UnknownShard:
        return "(shard not configured)"
    except sa.exc.OperationalError:
        return "(shard unreachable)"


@tenants.command("shards")
def shards() -> None:
    """List the shards with their tenants and room; new tenants go where most room is left."""
    for load in shard_loads():
        click.echo(f"{load.name:32} {load.tenants:8} tenants {load.capacity:8} capacity {load.room:8} room")


@tenants.command("migrate")
@click.option("--workers", default=4, show_default=True, help="Schemas migrated at once.")
@click.option("--progress/--no-progress", default=True)
def migrate(workers: int, progress: bool) -> None:
    """Bring every tenant schema to head in parallel; failures are reported, not fatal to others."""
    migrations.upgrade_public(db.engine)
    failed = _migrate_all(workers, progress)
    sys.exit(1 if failed else 0)


def _migrate_all(workers: int, progress: bool) -> int:
    placed = [(t.shard, t.schema_name) for t in provisioning.all_tenants()]
    db.session.rollback()
    engines, unknown = {}, {}
    for shard, schema in placed:
        try:
            engines[shard] = shard_engine(shard)
        except UnknownShard as exc:
            unknown[schema] = str(exc)
    schemas = [(shard, schema) for shard, schema in placed if schema not in unknown]
    report = migrations.upgrade_all_tenants(engines, schemas, workers=workers, progress=progress)
    report.failed.update(unknown)
    click.echo(f"{len(report.upgraded)} upgraded, {len(report.current)} already at head, "
               f"{len(report.failed)} failed")
    for schema, error in sorted(report.failed.items()):
        click.echo(f"FAILED {schema}: {error}", err=True)
    return len(report.failed)


def _well_formed(slug: str) -> str:
    """Refuse an argument that cannot be a slug before it reaches a query (NUL would fail in the driver)."""
    if not is_slug(slug):
        raise click.BadParameter(f"{slug!r} is not a slug: 2-40 lowercase letters, digits and hyphens, "
                                 f"starting with a letter")
    return slug


def _finite(value: float) -> float:
    if math.isnan(value):  # FloatRange lets NaN through: it compares false with both ends
        raise click.BadParameter("not a number")
    return value


@tenants.command("move")
@click.argument("slug", callback=lambda _ctx, _param, value: _well_formed(value))
@click.option("--to", "target", required=True, help="The shard to move the tenant to.")
@click.option("--lock-timeout", default=5.0, show_default=True, type=click.FloatRange(0.001, 600),
              callback=lambda _ctx, _param, value: _finite(value),
              help="Seconds the freeze waits for writes in flight before the move gives up.")
def move(slug: str, target: str, lock_timeout: float) -> None:
    """Move a tenant's schema to another shard with a short write freeze; on failure it stays whole where it was."""
    try:
        done = move_tenant(slug, target, lock_timeout_ms=int(lock_timeout * 1000))
    except (MoveFailed, UnknownShard, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    except psycopg.OperationalError as exc:  # a shard down or unreachable before the move began
        raise click.ClickException(f"a database could not be reached; the tenant stays where it was: {exc}") from exc
    steps = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in done.timings.items())
    rows = sum(n for name, n in done.rows.items() if not name.startswith("sequence "))
    click.echo(f"moved {slug} from {done.tenant.shard} to {done.target}: {rows} rows in "
               f"{len(done.tables)} tables; {steps}")
    if done.leftover:
        raise click.ClickException(f"the old copy {done.leftover} on {done.tenant.shard} could not be dropped; "
                                   f"the next move of {slug} drops it")


@tenants.command("suspend")
@click.argument("slug", callback=lambda _ctx, _param, value: _well_formed(value))
@click.option("--undo", is_flag=True, help="Reactivate instead.")
def suspend(slug: str, undo: bool) -> None:
    """Suspend a tenant: its UI and API answer 404 until reactivated."""
    try:
        found = provisioning.set_status(slug, "active" if undo else "suspended")
    except provisioning.BeingDropped as exc:
        raise click.ClickException(str(exc)) from exc
    if found is None:
        raise click.ClickException(f"no tenant {slug!r}")
    db.session.commit()
    click.echo(f"{slug} {'reactivated' if undo else 'suspended'}")


@tenants.command("drop")
@click.argument("slug", callback=lambda _ctx, _param, value: _well_formed(value))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def drop(slug: str, yes: bool) -> None:
    """Delete a tenant and all of its data: mark it dropping (it answers nothing from then on), then drop it.

    Its data kept outside the database (stored files) is deleted again once the drop has committed:
    a scan that held the schema until then may have stored files after the first deletion.
    """
    if not yes:
        click.confirm(f"Drop {slug} and all of its data?", abort=True)
    try:
        retired = provisioning.retire_tenant(slug)
        db.session.commit()
    except (provisioning.TenantBusy, UnknownShard) as exc:
        raise click.ClickException(str(exc)) from exc
    except sa.exc.OperationalError as exc:  # a shard down
        raise click.ClickException(f"{slug} is not dropped, and nothing of it is changed (run it again): "
                                   f"{exc.orig}") from exc
    if retired is None:
        raise click.ClickException(f"no tenant {slug!r}")
    try:
        tenant_id = provisioning.drop_tenant(slug)
        db.session.commit()
    except Exception as exc:  # a shard down, a timeout, a store refusing to delete: rolled back, files or not
        db.session.rollback()
        raise click.ClickException(f"{slug} answers nothing now but is not dropped yet; run the drop again to "
                                   f"finish it: {getattr(exc, 'orig', None) or exc}") from exc
    try:
        provisioning.drop_outside_data(tenant_id)
    except Exception as exc:  # whatever the dropper's store raises; the tenant is gone, its leftovers are not
        raise click.ClickException(f"dropped {slug}, but what it kept outside the database (tenant id "
                                   f"{tenant_id}) could not be deleted again: {exc}") from exc
    click.echo(f"dropped {slug}")
