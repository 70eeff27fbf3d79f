"""The demo tenant that `make run` serves: people, a team, a rule and a few tickets."""

from __future__ import annotations

import os
from dataclasses import dataclass

import click
import sqlalchemy as sa
from flask import Flask

from app.assignment.services import create_rule
from app.auth import key_cache
from app.auth.actor import Actor
from app.auth.keys import mint_key
from app.extensions import db
from app.people import services as people
from app.tickets.services import create_ticket
from tenants import ApiKey, Tenant, tenant_context

DEMO_SLUG = "demo"
DEMO_PASSWORD = "demo-password"
DEMO_KEY_NAME = "make run"
PEOPLE = (
    ("admin@demo.example", "Ada Admin", "admin", [], None),
    ("agent1@demo.example", "Alan Agent", "agent", ["billing", "refunds"], 5),
    ("agent2@demo.example", "Grace Agent", "agent", ["billing", "technical"], 5),
    ("requester@demo.example", "Rita Requester", "requester", [], None),
)
TICKETS = (
    ("Refund for a double charge", "I was charged twice for my March invoice.", "high", "billing", ["refund"]),
    ("Cannot reset my password", "The reset email never arrives.", "normal", "account", ["login"]),
    ("Invoice address is wrong", "Please change the address on invoice 1043.", "low", "billing", []),
)


def init_app(app: Flask) -> None:
    app.cli.add_command(seed_demo_command)


@click.command("seed-demo")
def seed_demo_command() -> None:
    """Create the demo tenant if missing and print how to use it (with a fresh API key)."""
    demo = seed_demo()
    port = os.environ.get("PORT", "5000")
    click.echo(f"\nDemo organization: http://localhost:{port}{demo.url_path}")
    for email, role, password in demo.logins:
        click.echo(f"  {role:10} {email:28} password: {password}")
    click.echo(f"  API key (admin, new each run): {demo.api_key}")
    click.echo(f"  API docs: http://localhost:{port}/api/v1/docs\n")


@dataclass
class Demo:
    url_path: str
    logins: list[tuple[str, str, str]]
    api_key: str


def seed_demo(slug: str = DEMO_SLUG) -> Demo:
    """Create the demo tenant if it is missing; mint a fresh API key for this run either way."""
    from app.signup.services import sign_up

    tenant = db.session.execute(sa.select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none()
    if tenant is None:
        admin_email, admin_name = PEOPLE[0][0], PEOPLE[0][1]
        result = sign_up(name="Demo Inc", slug=slug, admin_email=admin_email,
                         admin_password=DEMO_PASSWORD, admin_name=admin_name)
        tenant = result.tenant
        with tenant_context(tenant.ref()):
            _fill(tenant)
    with tenant_context(tenant.ref()):
        admin = people.user_by_email(PEOPLE[0][0])
        db.session.execute(sa.update(ApiKey).where(ApiKey.tenant_id == tenant.id, ApiKey.name == DEMO_KEY_NAME,
                                                   ApiKey.revoked_at.is_(None)).values(revoked_at=sa.func.now()))
        key_cache.change_on_commit()
        _, key = mint_key(tenant.id, admin.id, DEMO_KEY_NAME, "admin")
        db.session.commit()
    return Demo(url_path=f"/t/{slug}/", api_key=key,
                logins=[(email, role, DEMO_PASSWORD) for email, _, role, _, _ in PEOPLE])


def _fill(tenant: Tenant) -> None:
    users = {}
    for email, name, role, skills, capacity in PEOPLE[1:]:
        users[email] = people.create_user(email=email, name=name, role=role, password=DEMO_PASSWORD,
                                          skills=skills, capacity=capacity)
    team = people.create_team("Support", "First line support")
    db.session.flush()
    for email in ("agent1@demo.example", "agent2@demo.example"):
        people.add_member(team, users[email])
    create_rule(name="Everything to Support", position=10, team_id=team.id, strategy="least_loaded")
    requester = Actor(user_id=users["requester@demo.example"].id, role="requester")
    for title, description, priority, category, tags in TICKETS:
        create_ticket(requester, title=title, description=description, priority=priority, category=category,
                      tags=tags)
    db.session.commit()
