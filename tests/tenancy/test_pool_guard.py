"""The checkout guard (on in every test) catches a pooled connection that carries a tenant."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tenants import guard_checkouts, schema_for
from tenants.database import PooledConnectionCarriesState


def test_a_connection_returned_with_a_search_path_is_refused_at_its_next_checkout(services, tenant):
    engine = sa.create_engine(services.database_url, pool_size=1, max_overflow=0)
    guard_checkouts(engine)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'SET search_path TO "{schema_for(tenant.slug)}"')  # the bug the guard is for
            conn.commit()
        with pytest.raises(PooledConnectionCarriesState, match="search_path"), engine.connect():
            pass
    finally:
        engine.dispose()


def test_a_clean_connection_passes_and_stays_clean(services):
    engine = sa.create_engine(services.database_url, pool_size=1, max_overflow=0)
    guard_checkouts(engine)
    try:
        for _ in range(3):
            with engine.connect() as conn:
                assert conn.exec_driver_sql("select 1").scalar() == 1
    finally:
        engine.dispose()


def test_a_statement_that_misses_the_tenant_schema_fails_loudly(app):
    from app.extensions import db

    with app.app_context():
        for statement in ("select count(*) from tickets", "select id from users limit 1",
                          "insert into messages (id) values (gen_random_uuid())"):
            with pytest.raises(sa.exc.DBAPIError, match=r"missed the tenant schema|cannot insert into view"):
                db.session.execute(sa.text(statement))
            db.session.rollback()
