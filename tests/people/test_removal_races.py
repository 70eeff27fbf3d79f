"""An admin removed or demoted while a key they asked for is being made: the key dies with their power.

The role was read once, as the request began, and the removal revokes the keys its admin made for
others: a key committed just after that outlived it, acting as another admin.
"""

from __future__ import annotations

import threading
import uuid

import pytest

from app.api_keys import services as key_services
from app.auth.actor import current_actor


@pytest.mark.parametrize("removal", ["delete", "demote"])
@pytest.mark.parametrize("made", ["before the removal commits", "after it"])
def test_a_key_an_admin_makes_for_another_as_they_are_removed_does_not_work(app, tenant, monkeypatch, removal, made):
    leaving, other = tenant.user("admin"), tenant.user("admin")
    leaving_key = tenant.key_for(leaving).key
    entered, go = threading.Event(), threading.Event()
    real = key_services.create_key

    def paused(*args, **kwargs):  # the leaving admin's request, let in, waits here
        if current_actor().user_id == uuid.UUID(leaving["id"]):
            entered.set()
            assert go.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(key_services, "create_key", paused)
    minted: dict = {}
    minting = threading.Thread(target=lambda: minted.update(response=app.test_client().post(
        "/api/v1/api-keys", json={"name": "parting gift", "role": "admin", "user_id": other["id"]},
        headers={"Authorization": f"Bearer {leaving_key}"})))
    minting.start()
    assert entered.wait(30)
    path = f"/api/v1/users/{leaving['id']}"
    if made == "after it":
        removed = tenant.api.delete(path) if removal == "delete" else tenant.api.patch(path, json={"role": "agent"})
        go.set()
        minting.join(30)
    else:
        go.set()
        minting.join(30)
        removed = tenant.api.delete(path) if removal == "delete" else tenant.api.patch(path, json={"role": "agent"})
    assert removed.status_code in (200, 204)
    assert minted["response"].status_code == 201
    gift = minted["response"].get_json()["key"]
    for _ in range(2):  # and not from this process's cache either
        assert tenant.api.client.get("/api/v1/api-keys", headers={"Authorization": f"Bearer {gift}"}).status_code == 401


def test_a_key_an_admin_made_for_another_keeps_working_while_they_are_an_admin(tenant):
    maker, other = tenant.user("admin"), tenant.user("agent")
    made = tenant.key_for(maker).post("/api/v1/api-keys", json={"name": "for the agent", "role": "agent",
                                                                "user_id": other["id"]})
    assert made.status_code == 201
    key = made.get_json()["key"]
    for _ in range(2):
        assert tenant.api.client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {key}"}).status_code == 200


@pytest.mark.parametrize("removal", ["demote", "delete"])
def test_a_key_made_with_a_key_made_as_its_maker_was_removed_does_not_work(app, tenant, monkeypatch, removal):
    """The maker check read only a key's own maker: a key made with the parting gift (for the gift's own
    user, so with no maker of its own to check) acted as another admin for good."""
    from app.people import services as people

    leaving, other = tenant.user("admin"), tenant.user("admin")
    leaving_api = tenant.key_for(leaving)
    revoked, go = threading.Event(), threading.Event()
    real = people.revoke_keys

    def paused(*args, **kwargs):  # the removal's transaction: its revocation ran, its commit not yet
        real(*args, **kwargs)
        revoked.set()
        assert go.wait(30)

    monkeypatch.setattr(people, "revoke_keys", paused)
    path = f"/api/v1/users/{leaving['id']}"
    removed: dict = {}
    remover = threading.Thread(target=lambda: removed.update(response=(
        tenant.api.delete(path) if removal == "delete" else tenant.api.patch(path, json={"role": "agent"}))))
    remover.start()
    assert revoked.wait(30)
    gift = leaving_api.post("/api/v1/api-keys", json={"name": "gift", "role": "admin", "user_id": other["id"]})
    client = tenant.api.client
    made_with_it = client.post("/api/v1/api-keys", json={"name": "laundered", "role": "admin"},
                               headers={"Authorization": f"Bearer {gift.get_json()['key']}"})
    assert gift.status_code == made_with_it.status_code == 201
    go.set()
    remover.join(30)
    assert removed["response"].status_code in (200, 204)
    for key in (gift.get_json()["key"], made_with_it.get_json()["key"]):
        assert client.get("/api/v1/users", headers={"Authorization": f"Bearer {key}"}).status_code == 401
