"""Helpers for assignment tests: teams of agents, rules, and an in-process burst worker."""

from __future__ import annotations

import pytest
from rq import SimpleWorker

from app.extensions import redis_client
from app.worker import use_app


@pytest.fixture
def run_jobs(app):
    """Return a function that runs every queued assignment job in this process, then returns."""

    def run() -> None:
        use_app(app)
        with app.app_context():
            connection = redis_client()
        SimpleWorker(["assignment"], connection=connection).work(burst=True)

    return run


@pytest.fixture
def desk(tenant):
    """Return helpers to build a team of agents and rules in `tenant`."""
    return Desk(tenant)


class Desk:
    def __init__(self, tenant) -> None:
        self.t = tenant

    def team(self, name: str, members: list[dict]) -> dict:
        resp = self.t.api.post("/api/v1/teams", json={"name": name})
        assert resp.status_code == 201, resp.get_json()
        team = resp.get_json()
        for m in members:
            assert self.t.api.put(f"/api/v1/teams/{team['id']}/members/{m['id']}").status_code == 200
        return team

    def agents(self, n: int, **fields) -> list[dict]:
        return [self.t.user("agent", name=f"agent {i}", **fields) for i in range(n)]

    def rule(self, team: dict, strategy: str = "least_loaded", **fields) -> dict:
        body = {"name": f"{strategy} rule", "position": 0, "team_id": team["id"], "strategy": strategy, **fields}
        resp = self.t.api.post("/api/v1/assignment-rules", json=body)
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()

    def ticket(self, title: str = "Help", **fields) -> dict:
        resp = self.t.api.post("/api/v1/tickets", json={"title": title, **fields})
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()

    def get(self, ticket: dict) -> dict:
        return self.t.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()

    def assignment(self, ticket: dict) -> dict:
        resp = self.t.api.get(f"/api/v1/tickets/{ticket['id']}/assignment")
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()


@pytest.fixture
def in_tenant(app):
    """Return a context manager that enters the app and `tenant`'s context (for direct DB work)."""
    from contextlib import contextmanager

    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.resolution import active_tenant

    @contextmanager
    def enter(tenant):
        with app.app_context():
            ref = active_tenant(tenant.slug).ref()
            db.session.rollback()
            with tenant_context(ref):
                yield db.session
                db.session.rollback()

    return enter

