"""Two guards for many tenants: a pooled connection is closed once it has served enough tenants
(PostgreSQL caches every relation a connection touched for its lifetime), and no statement ever
names two tenant schemas (the check in conftest.py, which every test runs under)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app import create_app
from app.extensions import db
from app.tickets.models import Ticket
from tenants import active_tenant, tenant_context
from tests.helpers import app_config
from tests.tenant_statements import StatementSpansTenants, crossings_since_last_call


def _backends(services, tenants, limit: int) -> list[int]:
    """Return the backend pid that served each tenant in turn, through one pooled connection."""
    app = create_app(app_config(services, DB_CONNECTION_MAX_TENANTS=limit,
                                SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 1, "max_overflow": 0}))
    pids = []
    with app.app_context():
        refs = [active_tenant(t.slug).ref() for t in tenants]
        db.session.rollback()
        for ref in refs:
            with tenant_context(ref):
                pids.append(db.session.execute(sa.text("select pg_backend_pid()")).scalar())
                db.session.execute(sa.select(sa.func.count()).select_from(Ticket)).scalar()
                db.session.commit()  # the connection goes back to the pool here
        db.engine.dispose()
    return pids


def test_a_pooled_connection_is_closed_once_it_has_served_its_tenants(services, make_tenant):
    a, b, c = make_tenant(), make_tenant(), make_tenant()
    pids = _backends(services, [a, b, a, c, a], limit=2)
    assert pids[0] == pids[1]  # a, then b: two tenants served, so closed on its return
    assert pids[2] != pids[1] and pids[2] == pids[3]  # a fresh one serves a, then c
    assert pids[4] != pids[3]
    assert len(set(_backends(services, [a, b, c, a], limit=0))) == 1  # 0: never


def test_a_statement_naming_two_tenant_schemas_fails_the_check(app, make_tenant):
    a, b = make_tenant(), make_tenant()
    with app.app_context(), pytest.raises(StatementSpansTenants):
        db.session.execute(sa.text(f'select count(*) from "tenant_{a.slug}".tickets '
                                   f'join tenant_{b.slug}.tickets using (id)'))
    assert len(crossings_since_last_call()) == 1
