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


def made_up_key() -> str:
    """A key of the right shape and checksum that no organization has: it is looked up, and not found."""
    import secrets

    from app.auth.keys import BASE62, KEY_PREFIX, LOOKUP_LENGTH, SECRET_LENGTH, _checksum

    body = "".join(secrets.choice(BASE62) for _ in range(LOOKUP_LENGTH + SECRET_LENGTH))
    return f"{KEY_PREFIX}{body}{_checksum(body)}"


def test_an_address_sending_unknown_keys_is_held_back_except_for_keys_its_process_knows(services, make_tenant,
                                                                                        monkeypatch):
    import uuid

    from app.auth import request_auth

    tenant = make_tenant()
    limited = create_app(app_config(services, KEY_FAILURES_PER_ADDRESS_PER_MINUTE=3))
    address = f"198.51.100.{uuid.uuid4().int % 250 + 1}"  # its own counters, whatever ran before

    def get(key: str, remote: str = address):
        return limited.test_client().get("/api/v1/users", headers={"Authorization": f"Bearer {key}"},
                                         environ_base={"REMOTE_ADDR": remote})

    assert [get(tenant.key).status_code for _ in range(2)] == [200, 200]  # known to this process from now on
    assert [get(made_up_key()).status_code for _ in range(3)] == [401, 401, 401]
    assert get("tms_garbage").status_code == 401  # never looked up: not counted
    over = get(made_up_key())
    assert over.status_code == 429 and int(over.headers["Retry-After"]) >= 1
    assert over.get_json()["code"] == 429 and over.get_json()["message"]

    looked_up = []
    monkeypatch.setattr(request_auth, "verify_key", lambda key: looked_up.append(key))
    assert get(made_up_key()).status_code == 429 and looked_up == []  # refused before any lookup
    monkeypatch.undo()
    assert get(tenant.key).status_code == 200
    assert get(make_tenant().key).status_code == 429  # a key this process has not seen waits too
    assert get(made_up_key(), remote="198.51.100.251").status_code == 401  # another address is not held back
