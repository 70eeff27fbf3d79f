"""One organization's flood is throttled while another's requests go on; no statement runs forever."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app import create_app
from app.extensions import db
from tests.helpers import ApiClient, app_config


@pytest.fixture
def strict(services):
    return create_app(app_config(services, RATE_LIMIT_PER_MINUTE=1000, RATE_LIMIT_PER_TENANT_PER_MINUTE=30,
                                 DB_STATEMENT_TIMEOUT_MS=300))


def test_a_flooding_tenant_is_throttled_and_a_quiet_one_is_not(strict, make_tenant):
    noisy, quiet = make_tenant(), make_tenant()
    client = strict.test_client()
    keys = [ApiClient(client, noisy.key)] + [ApiClient(client, noisy.key_for(noisy.user("agent")).key)
                                              for _ in range(2)]
    quiet_api = ApiClient(client, quiet.key)
    statuses, quiet_statuses = [], []
    for i in range(60):
        statuses.append(keys[i % 3].get("/api/v1/tickets").status_code)  # no key is over its own limit
        if i % 6 == 0:
            quiet_statuses.append(quiet_api.get("/api/v1/tickets").status_code)
    assert statuses.count(200) <= 30 < statuses.count(429) + statuses.count(200)
    assert statuses[-1] == 429
    refused = keys[0].get("/api/v1/tickets")
    assert "organization" in refused.get_json()["message"] and int(refused.headers["Retry-After"]) > 0
    assert set(quiet_statuses) == {200}


def test_every_connection_carries_a_statement_timeout(services):
    app = create_app(app_config(services, DB_STATEMENT_TIMEOUT_MS=300))
    with app.app_context():
        assert db.session.execute(sa.text("show statement_timeout")).scalar() == "300ms"
        with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
            db.session.execute(sa.text("select pg_sleep(2)"))
        db.session.rollback()
