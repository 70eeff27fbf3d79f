"""Per-key rate limits counted in Redis."""

from app import create_app
from tests.helpers import ApiClient, app_config


def test_over_the_limit_is_429_with_headers(services, make_tenant):
    tenant = make_tenant()
    limited = create_app(app_config(services, RATE_LIMIT_PER_MINUTE=3))
    api = ApiClient(limited.test_client(), tenant.key)
    seen = [api.get("/api/v1/users") for _ in range(4)]
    assert [r.status_code for r in seen[:3]] == [200, 200, 200]
    assert seen[0].headers["X-RateLimit-Limit"] == "3"
    assert [r.headers["X-RateLimit-Remaining"] for r in seen[:3]] == ["2", "1", "0"]
    assert int(seen[0].headers["X-RateLimit-Reset"]) > 0
    over = seen[3]
    assert over.status_code == 429
    assert int(over.headers["Retry-After"]) >= 1
    assert over.get_json()["code"] == 429
    # Limits are per key: another key is unaffected.
    fresh = make_tenant()
    assert ApiClient(limited.test_client(), fresh.key).get("/api/v1/users").status_code == 200
