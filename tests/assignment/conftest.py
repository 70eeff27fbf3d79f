"""Helpers for assignment tests: teams of agents, rules, and an in-process burst worker."""

from __future__ import annotations

import pytest
from rq import SimpleWorker

from app.extensions import redis_client
from app.worker import use_app
from tests.helpers import Desk


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
