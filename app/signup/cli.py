"""`flask tenants create`: a new organization from the command line, by the same rules as signup."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from app.signup.services import sign_up
from tenants import SlugTaken, slug_problem, tenant_commands


def init_app(app: Flask) -> None:
    if "create" not in tenant_commands.commands:
        tenant_commands.add_command(create)


@click.command("create")
@click.argument("slug")
@click.option("--name", required=True)
@click.option("--admin-email", required=True)
@click.option("--admin-password", required=True)
@with_appcontext
def create(slug: str, name: str, admin_email: str, admin_password: str) -> None:
    """Create a tenant with its schema, admin user and an admin API key."""
    problem = slug_problem(slug)
    if problem:
        raise click.BadParameter(problem, param_hint="SLUG")
    try:
        result = sign_up(name=name, slug=slug, admin_email=admin_email, admin_password=admin_password)
    except SlugTaken:
        raise click.ClickException(f"the slug {slug!r} is taken") from None
    click.echo(f"created {slug} (schema {result.tenant.schema_name})")
    click.echo(f"admin API key (shown once): {result.api_key}")
