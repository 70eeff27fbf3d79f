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


def made_up_key(prefix: str = "") -> str:
    """A key of the right shape and checksum that no organization has: it is looked up, and not found.
    With `prefix`, it borrows a real key's lookup id (admins see those listed)."""
    import secrets

    from app.auth.keys import BASE62, KEY_PREFIX, LOOKUP_LENGTH, SECRET_LENGTH, _checksum

    body = prefix + "".join(secrets.choice(BASE62) for _ in range(LOOKUP_LENGTH + SECRET_LENGTH - len(prefix)))
    return f"{KEY_PREFIX}{body}{_checksum(body)}"


def test_an_address_sending_made_up_keys_is_held_back_except_for_keys_its_process_has_verified(services, make_tenant,
                                                                                               monkeypatch):
    import uuid

    from app.auth import request_auth
    from app.auth.keys import lookup_id

    tenant, neighbour = make_tenant(), make_tenant()
    limited = create_app(app_config(services, KEY_FAILURES_PER_ADDRESS_PER_MINUTE=3))
    address = f"198.51.100.{uuid.uuid4().int % 250 + 1}"  # its own counters, whatever ran before

    def get(key: str, remote: str = address):
        return limited.test_client().get("/api/v1/users", headers={"Authorization": f"Bearer {key}"},
                                         environ_base={"REMOTE_ADDR": remote})

    assert get(tenant.key).status_code == 200  # verified by this process from now on
    assert [get(made_up_key()).status_code for _ in range(3)] == [401, 401, 401]
    assert get("tms_garbage").status_code == 401  # never looked up: not counted
    over = get(made_up_key())
    assert over.status_code == 429 and int(over.headers["Retry-After"]) >= 1
    assert over.get_json()["code"] == 429 and over.get_json()["message"]

    looked_up = []
    monkeypatch.setattr(request_auth, "verify_key", lambda key: looked_up.append(key))
    assert get(made_up_key()).status_code == 429 and looked_up == []  # refused before any lookup
    assert get(neighbour.key).status_code == 429 and looked_up == []  # so is a key this process never verified
    monkeypatch.undo()
    with limited.app_context():
        limited.extensions["tms_key_cache"].entries.clear()  # past the cache's few seconds
    assert get(tenant.key).status_code == 200  # its prefix was verified here before
    assert get(made_up_key(), remote="198.51.100.251").status_code == 401  # another address is not held back
    # A made-up key that borrows the live key's lookup id is held back all the same, before any lookup.
    monkeypatch.setattr(request_auth, "verify_key", lambda key: looked_up.append(key))
    assert get(made_up_key(prefix=lookup_id(tenant.key))).status_code == 429 and looked_up == []


def test_a_revoked_key_retried_in_a_loop_is_looked_up_once_and_holds_nobody_back(services, make_tenant,
                                                                                 monkeypatch):
    import uuid

    from app.auth import request_auth

    tenant, neighbour = make_tenant(), make_tenant()
    limited = create_app(app_config(services, KEY_FAILURES_PER_ADDRESS_PER_MINUTE=3))
    address = f"192.0.2.{uuid.uuid4().int % 250 + 1}"
    made = tenant.api.post("/api/v1/api-keys", json={"name": "old", "role": "agent"}).get_json()
    assert tenant.api.delete(f"/api/v1/api-keys/{made['id']}").status_code == 204

    def get(key: str):
        return limited.test_client().get("/api/v1/users", headers={"Authorization": f"Bearer {key}"},
                                         environ_base={"REMOTE_ADDR": address})

    looked_up = []
    real = request_auth.verify_key
    monkeypatch.setattr(request_auth, "verify_key", lambda key: looked_up.append(key) or real(key))
    assert [get(made["key"]).status_code for _ in range(10)] == [401] * 10
    assert len(looked_up) == 1
    assert get(neighbour.key).status_code == 200


def test_addresses_of_one_ipv6_subscriber_count_as_one(services, make_tenant):
    """A subscriber is given a whole /64: counted by each address, every limit by address was 2**64 limits."""
    import secrets

    limited = create_app(app_config(services, KEY_FAILURES_PER_ADDRESS_PER_MINUTE=3, SIGNUP_RATE_LIMIT_PER_HOUR=2))
    network = f"2001:db8:{secrets.randbelow(0xffff):x}:{secrets.randbelow(0xffff):x}"

    def address() -> dict:
        return {"REMOTE_ADDR": f"{network}:{secrets.randbelow(0xffff):x}::{secrets.randbelow(0xffff):x}"}

    client = limited.test_client()
    made = [client.get("/api/v1/users", headers={"Authorization": f"Bearer {made_up_key()}"},
                       environ_base=address()).status_code for _ in range(5)]
    assert made == [401, 401, 401, 429, 429]
    tenant = make_tenant()
    other = {"REMOTE_ADDR": f"2001:db8:ffff:{secrets.randbelow(0xffff):x}::1"}  # another subscriber
    assert client.get("/api/v1/users", headers={"Authorization": f"Bearer {tenant.key}"},
                      environ_base=other).status_code == 200

    def signup(environ: dict) -> int:
        slug = f"v6{secrets.token_hex(5)}"
        return client.post("/api/v1/signup", environ_base=environ, json={
            "name": "Six", "slug": slug, "admin_email": f"a@{slug}.example", "admin_password": "correct horse battery",
        }).status_code

    assert [signup(address()) for _ in range(3)] == [201, 201, 429]
    mapped = f"198.51.100.{secrets.randbelow(250) + 1}"
    assert [signup({"REMOTE_ADDR": a}) for a in (mapped, f"::ffff:{mapped}", mapped)] == [201, 201, 429]
