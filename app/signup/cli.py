"""`flask tenants create`: a new organization from the command line, by the same rules as signup."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext
from marshmallow import ValidationError

from app.input_guard import BadInput, check_value
from app.signup.api import SignupSchema
from app.signup.services import sign_up
from tenants import SlugTaken, tenant_commands


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
    given = {"name": name, "slug": slug, "admin_email": admin_email, "admin_password": admin_password}
    try:
        check_value(given)  # control characters and NUL, as the API's input guard refuses them
        fields = SignupSchema().load(given)
    except BadInput as exc:
        raise click.BadParameter(_said(exc.errors or {"": [exc.message]})) from None
    except ValidationError as exc:
        raise click.BadParameter(_said(exc.normalized_messages())) from None
    try:
        result = sign_up(**fields)
    except SlugTaken:
        raise click.ClickException(f"the slug {slug!r} is taken") from None
    click.echo(f"created {slug} (schema {result.tenant.schema_name})")
    click.echo(f"admin API key (shown once): {result.api_key}")


def _said(errors: dict) -> str:
    """Word a refusal per argument: `--admin-password: Shorter than minimum length 8.`"""
    parts = []
    for name, messages in errors.items():
        label = "SLUG" if name == "slug" else f"--{name.replace('_', '-')}"
        parts.append(f"{label}: {' '.join(map(str, messages))}")
    return "; ".join(parts)
