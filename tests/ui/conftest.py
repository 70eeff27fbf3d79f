"""Fixtures for page tests: a help desk with people in it, signed-in test clients, signed-in browsers.

Reusable by every area's pages (the admin pages too): `help_desk` builds a tenant with an agent
team, a rule and a requester; `sign_in(client, person)` and `browser_sign_in(page, person)` start
a session; `assignment_worker` runs a real RQ worker process for the browser tests, which need
auto-assignment to happen as it does in production.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from playwright.sync_api import expect
from rq import Worker

from app.embedded import stop_process
from tests.helpers import Desk, TenantHandle, wait_until
from tests.servers import DESKTOP, start_relay, start_worker

PASSWORD = "password123"  # what TenantHandle.user gives everyone
# Browser expectations poll until they hold; on a busy 2-core CI machine give them room (a hang
# guard, not a timing test: the benchmarks measure time).
expect.set_options(timeout=10_000)
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@dataclass
class Person:
    """Someone who can sign in: their user JSON, email and password, and the tenant they belong to."""

    tenant: TenantHandle
    user: dict
    password: str = PASSWORD

    @property
    def id(self) -> str:
        return self.user["id"]

    @property
    def email(self) -> str:
        return self.user["email"]

    @property
    def name(self) -> str:
        return self.user["name"]


@dataclass
class HelpDesk:
    """A tenant with a team of two agents, a rule that routes everything to it, and two requesters."""

    tenant: TenantHandle
    desk: Desk
    agent: Person
    agent2: Person
    requester: Person
    other_requester: Person
    admin: Person
    team: dict

    @property
    def slug(self) -> str:
        return self.tenant.slug

    def ticket_for(self, person: Person, title: str = "Printer on fire", **fields) -> dict:
        """Open a ticket as `person` (through a key of theirs) and return its JSON."""
        return self.tenant.key_for(person.user).post("/api/v1/tickets", json={"title": title, **fields}).get_json()


def make_help_desk(tenant: TenantHandle, strategy: str = "round_robin") -> HelpDesk:
    desk = Desk(tenant)
    agent = Person(tenant, tenant.user("agent", name="Ada Agent"))
    agent2 = Person(tenant, tenant.user("agent", name="Bo Agent"))
    team = desk.team("Support", [agent.user, agent2.user])
    desk.rule(team, strategy=strategy, name="Everything to Support")
    requester = Person(tenant, tenant.user("requester", name="Jo Requester"))
    other = Person(tenant, tenant.user("requester", name="Kim Requester"))
    admin = Person(tenant, {"id": tenant.admin_id, "email": tenant.admin_email, "name": "admin", "role": "admin"},
                   tenant.admin_password)
    return HelpDesk(tenant, desk, agent, agent2, requester, other, admin, team)


@pytest.fixture
def help_desk(tenant) -> HelpDesk:
    return make_help_desk(tenant)


@pytest.fixture
def sign_in(app):
    """Return `sign_in(person)`: a fresh test client signed in as `person` under their tenant."""

    def signed_in(person: Person):
        client = app.test_client()
        response = client.post(f"/t/{person.tenant.slug}/login",
                               data={"email": person.email, "password": person.password})
        assert response.status_code == 302, response.data[:500]
        return client

    return signed_in


def browser_sign_in(page, base_url: str, person: Person) -> None:
    """Sign `person` in through the real form, in a browser page."""
    page.goto(f"{base_url}/t/{person.tenant.slug}/login")
    page.get_by_label("email").fill(person.email)
    page.get_by_label("password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/t/{person.tenant.slug}/")


def open_ticket(browser, base: str, person: Person, ticket: dict, viewport: dict = DESKTOP, live_ms: int = 30_000):
    """Sign `person` in, in a new browser context, and open the ticket's page once it is live."""
    page = browser.new_context(**viewport).new_page()
    browser_sign_in(page, base, person)
    page.goto(f"{base}/t/{person.tenant.slug}/tickets/{ticket['number']}")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=live_ms)
    return page


@pytest.fixture(scope="module")
def assignment_worker(services, tmp_path_factory) -> Iterator[None]:
    """Run a real `flask worker` on the assignment queue, and the outbox relay, for this module's tests."""
    folder = tmp_path_factory.mktemp("ui-worker")
    connection = redis.Redis.from_url(services.redis_url)
    before = {w.name for w in Worker.all(connection=connection)}
    procs = [start_worker(services.database_url, services.redis_url, folder, "ui-worker"),
             start_relay(services.database_url, services.redis_url, folder)]
    # Ready before the first test counts on it: on a loaded machine its start took much of a test's wait.
    wait_until(lambda: {w.name for w in Worker.all(connection=connection)} - before, "the worker to start",
               timeout=60)
    yield
    for proc in procs:
        stop_process(proc, signal.SIGTERM, 10)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Return tests/artifacts/ (git-ignored), where the UI tests keep a screenshot of every main page."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def keep(artifacts: Path):
    """Return `keep(page, name)`: save a full-page screenshot (or the window's, `full_page=False`) as
    tests/artifacts/<name>.png."""

    def shoot(page, name: str, full_page: bool = True) -> Path:
        path = artifacts / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return shoot
