"""An open socket or a stream token never outlives the access it was opened with.

Once a socket's key is revoked (or its grace after a rotation ends), its user deleted or demoted,
or its tenant suspended, the socket acts on no further frame and closes with 1008 at once (not at
the next periodic resync, which these servers leave at 30 s; revocation itself is in
test_stream.py); a token minted before such a change opens nothing.
"""

from __future__ import annotations

import uuid

import pytest
import redis
import sqlalchemy as sa
import websocket

from app.auth.key_cache import generation_key
from app.extensions import db
from tenants import ApiKey, active_tenant
from tenants.provisioning import set_status
from tests import helpers


def _agent_socket(tenant, server, ticket):
    agent = tenant.user("agent")
    created = tenant.api.post("/api/v1/api-keys", json={"name": "agent key", "role": "agent",
                                                        "user_id": agent["id"]}).get_json()
    ws = server.connect(ticket["id"], key=created["key"])
    helpers.post_message(tenant.api, ticket["id"], body="while allowed")
    assert helpers.next_event(ws, "message.created")["message"]["body"] == "while allowed"
    return agent, created, ws


def _bodies(tenant, ticket) -> list[str]:
    return [m["body"] for m in tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]]


def test_a_frame_after_a_revocation_is_not_acted_on_even_if_the_announcement_was_lost(
        app, services, tenant, in_tenant, server_a):
    ticket = helpers.new_ticket(tenant.api)
    _, created, ws = _agent_socket(tenant, server_a, ticket)
    with in_tenant(tenant) as session:  # revoke behind the API's back: no announcement on pub/sub
        session.execute(sa.update(ApiKey).where(ApiKey.id == uuid.UUID(created["id"]))
                        .values(revoked_at=sa.func.now()))
        session.commit()
    with app.app_context():
        tenant_id = active_tenant(tenant.slug).id
    redis.Redis.from_url(services.redis_url).set(generation_key(tenant_id), uuid.uuid4().hex)
    helpers.send(ws, type="message", body="after revocation", internal=True)
    assert helpers.close_code(ws, timeout=5) == 1008
    assert "after revocation" not in _bodies(tenant, ticket)


def test_a_deleted_users_socket_closes_at_once(tenant, server_a):
    ticket = helpers.new_ticket(tenant.api)
    agent, _, ws = _agent_socket(tenant, server_a, ticket)
    assert tenant.api.delete(f"/api/v1/users/{agent['id']}").status_code == 204
    assert helpers.close_code(ws, timeout=5) == 1008


def test_a_suspended_tenants_sockets_close_at_once(app, make_tenant, server_a):
    doomed = make_tenant()
    ticket = helpers.new_ticket(doomed.api)
    ws = server_a.connect(ticket["id"], key=doomed.key)
    with app.app_context():
        set_status(doomed.slug, "suspended")
        db.session.commit()
    assert helpers.close_code(ws, timeout=5) == 1008


def test_a_demoted_agent_stops_seeing_internal_notes_at_once(tenant, server_a):
    ticket = helpers.new_ticket(tenant.api)
    agent, _, ws = _agent_socket(tenant, server_a, ticket)
    assert tenant.api.patch(f"/api/v1/users/{agent['id']}", json={"role": "requester"}).status_code == 200
    helpers.post_message(tenant.api, ticket["id"], body="secret", internal=True)
    helpers.post_message(tenant.api, ticket["id"], body="public")
    # The ticket is the admin's, so the requester it became may no longer see it at all.
    assert helpers.close_code(ws, timeout=5) == 1008


def test_a_demoted_requesters_own_ticket_stays_open_without_internal_notes(tenant, server_a):
    agent = tenant.user("agent")
    key = tenant.key_for(agent)
    ticket = helpers.new_ticket(tenant.api, requester_id=agent["id"])
    ws = server_a.connect(ticket["id"], key=key.key)
    assert tenant.api.patch(f"/api/v1/users/{agent['id']}", json={"role": "requester"}).status_code == 200
    helpers.post_message(tenant.api, ticket["id"], body="secret", internal=True)
    helpers.post_message(tenant.api, ticket["id"], body="public")
    assert helpers.next_event(ws, "message.created")["message"]["body"] == "public"
    helpers.send(ws, type="message", body="note?", internal=True)
    assert helpers.next_event(ws, "error")["code"] == 403


def test_tokens_minted_before_a_revocation_deletion_or_suspension_open_nothing(app, tenant, make_tenant,
                                                                              server_a):
    ticket = helpers.new_ticket(tenant.api)
    agent = tenant.user("agent")
    created = tenant.api.post("/api/v1/api-keys", json={"name": "k", "role": "agent",
                                                        "user_id": agent["id"]}).get_json()
    key = helpers.ApiClient(tenant.api.client, created["key"])
    token = key.post(f"/api/v1/tickets/{ticket['id']}/stream-token").get_json()["token"]
    assert tenant.api.delete(f"/api/v1/api-keys/{created['id']}").status_code == 204
    assert helpers.refused_status(server_a, ticket["id"], token=token) == 401

    other = tenant.user("agent")
    other_key = tenant.key_for(other)
    token = other_key.post(f"/api/v1/tickets/{ticket['id']}/stream-token").get_json()["token"]
    assert tenant.api.delete(f"/api/v1/users/{other['id']}").status_code == 204
    assert helpers.refused_status(server_a, ticket["id"], token=token) == 401

    doomed = make_tenant()
    doomed_ticket = helpers.new_ticket(doomed.api)
    token = doomed.api.post(f"/api/v1/tickets/{doomed_ticket['id']}/stream-token").get_json()["token"]
    with app.app_context():
        set_status(doomed.slug, "suspended")
        db.session.commit()
    assert helpers.refused_status(server_a, doomed_ticket["id"], token=token) == 401


def test_a_rotated_keys_socket_closes_when_its_grace_ends_and_its_tokens_open_nothing(tenant, server_a):
    """Nothing announces the end of a grace: the socket waits for it, as it waits for its next resync."""
    ticket = helpers.new_ticket(tenant.api)
    _, created, ws = _agent_socket(tenant, server_a, ticket)
    key = helpers.ApiClient(tenant.api.client, created["key"])
    token = key.post(f"/api/v1/tickets/{ticket['id']}/stream-token").get_json()["token"]
    rotated = tenant.api.post(f"/api/v1/api-keys/{created['id']}/rotate", json={"grace_seconds": 2})
    assert rotated.status_code == 201
    helpers.post_message(tenant.api, ticket["id"], body="during the grace")
    assert helpers.next_event(ws, "message.created")["message"]["body"] == "during the grace"
    assert helpers.close_code(ws, timeout=10) == 1008  # well before this server's 30 s resync
    assert key.get("/api/v1/tickets").status_code == 401
    assert helpers.refused_status(server_a, ticket["id"], token=token) == 401
    fresh = helpers.ApiClient(tenant.api.client, rotated.get_json()["key"])
    assert fresh.get("/api/v1/tickets").status_code == 200


def test_a_key_past_its_end_ends_the_socket_without_asking_the_database(monkeypatch):
    """An end is only ever moved earlier, so none is needed; with the database down, a socket asking it
    kept its actor and asked again every 10 ms, forwarding events all the while."""
    from datetime import UTC, datetime, timedelta

    from app.auth.actor import Actor
    from app.conversation import stream

    monkeypatch.setattr(stream, "live_actor", lambda grant: pytest.fail("the database was asked"))
    ended = stream.TicketStream.__new__(stream.TicketStream)
    ended.actor = Actor(user_id=uuid.uuid4(), role="agent", api_key_id=uuid.uuid4(),
                        key_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(stream.GrantEnded):
        ended.recheck_grant()


def test_a_token_opens_no_socket_under_another_tenants_path(tenant, other_tenant, server_a):
    ticket = helpers.new_ticket(tenant.api)
    token = tenant.api.post(f"/api/v1/tickets/{ticket['id']}/stream-token").get_json()["token"]
    url = f"{server_a.ws_base}/t/{other_tenant.slug}/api/v1/tickets/{ticket['id']}/stream?token={token}"
    try:
        websocket.create_connection(url, timeout=5).close()
        status = 101
    except websocket.WebSocketBadStatusException as refused:
        status = refused.status_code
    assert status == 404
    token = tenant.api.post(f"/api/v1/tickets/{ticket['id']}/stream-token").get_json()["token"]
    ws = websocket.create_connection(
        f"{server_a.ws_base}/t/{tenant.slug}/api/v1/tickets/{ticket['id']}/stream?token={token}", timeout=5)
    ws.close()


def test_open_sockets_are_capped_per_key_per_user_and_per_organization(tenant, capped_server):
    ticket = helpers.new_ticket(tenant.api)
    agent = tenant.user("agent")
    first, second = tenant.key_for(agent), tenant.key_for(agent)
    held = [capped_server.connect(ticket["id"], key=first.key) for _ in range(2)]
    assert helpers.refused_status(capped_server, ticket["id"], key=first.key) == 429
    held.append(capped_server.connect(ticket["id"], key=second.key))  # the user's third
    assert helpers.refused_status(capped_server, ticket["id"], key=second.key) == 429  # the user's cap
    held.pop(0).close()
    helpers.wait_until(lambda: _opens(capped_server, ticket, first.key), "a slot to free up", timeout=10)
    others = [tenant.key_for(tenant.user("agent")) for _ in range(2)]
    held.append(capped_server.connect(ticket["id"], key=others[0].key))
    held.append(capped_server.connect(ticket["id"], key=others[0].key))  # the organization's fourth
    assert helpers.refused_status(capped_server, ticket["id"], key=others[1].key) == 429


def _opens(server, ticket, key) -> bool:
    try:
        server.connect(ticket["id"], key=key).close()
        return True
    except websocket.WebSocketBadStatusException:
        return False


def test_a_key_change_in_another_tenant_does_not_recheck_this_tenants_sockets(make_tenant, in_tenant, server_a):
    """Announcements are per tenant: another tenant's revocations cost this tenant's sockets nothing.

    The probe: this socket's key is revoked behind the API's back (nothing announced for its
    tenant), so a socket that re-checks closes with 1008; one that does not gets the next message.
    """
    mine, theirs = make_tenant(), make_tenant()
    ticket = helpers.new_ticket(mine.api)
    _, created, ws = _agent_socket(mine, server_a, ticket)
    with in_tenant(mine) as session:
        session.execute(sa.update(ApiKey).where(ApiKey.id == uuid.UUID(created["id"]))
                        .values(revoked_at=sa.func.now()))
        session.commit()
    temp = theirs.api.post("/api/v1/api-keys", json={"name": "temp"}).get_json()
    assert theirs.api.delete(f"/api/v1/api-keys/{temp['id']}").status_code == 204
    # Published after the other tenant's announcement, on the same pub/sub connection: by the time
    # it arrives, that announcement has been handled.
    helpers.post_message(mine.api, ticket["id"], body="after the other tenant's change")
    assert helpers.next_event(ws, "message.created")["message"]["body"] == "after the other tenant's change"
