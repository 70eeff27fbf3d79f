"""A key acting below its user's role cannot take over that user's sign-in (and with it the user's role)."""

from __future__ import annotations

from tests.helpers import ApiClient


def _sign_in(tenant, email: str, password: str):
    client = tenant.api.client.application.test_client()
    return client.post(f"/t/{tenant.slug}/login", data={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": "10.7.7.7"})


def test_a_key_below_its_users_role_cannot_set_that_users_password(tenant):
    admin = tenant.user("admin", password="the admin's own password")
    integration = tenant.key_for(admin, role="requester")  # a narrow key handed to an integration
    assert integration.get("/api/v1/api-keys").status_code == 403  # it really is a requester key
    resp = integration.patch(f"/api/v1/users/{admin['id']}", json={"password": "chosen by the key holder"})
    assert resp.status_code == 403
    assert _sign_in(tenant, admin["email"], "chosen by the key holder").status_code == 401
    assert _sign_in(tenant, admin["email"], "the admin's own password").status_code == 302


def test_an_agent_key_of_an_admin_cannot_set_the_password_either(tenant):
    admin = tenant.user("admin", password="the admin's own password")
    agent_key = tenant.key_for(admin, role="agent")
    resp = agent_key.patch(f"/api/v1/users/{admin['id']}", json={"password": "chosen by the key holder"})
    assert resp.status_code == 403
    assert agent_key.patch(f"/api/v1/users/{admin['id']}", json={"name": "renamed"}).status_code == 200


def test_a_key_with_its_users_full_role_still_changes_the_password(tenant):
    agent = tenant.user("agent", password="first agent password")
    own: ApiClient = tenant.key_for(agent)
    assert own.patch(f"/api/v1/users/{agent['id']}", json={"password": "second agent password"}).status_code == 200
    assert _sign_in(tenant, agent["email"], "second agent password").status_code == 302
