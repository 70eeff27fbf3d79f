"""A valid key of tenant A never reads or writes anything of tenant B: B's ids answer 404."""

import pytest


@pytest.fixture
def b_ids(other_tenant):
    agent = other_tenant.user("agent")
    team = other_tenant.api.post("/api/v1/teams", json={"name": "B team"}).get_json()
    key = other_tenant.api.post("/api/v1/api-keys", json={"name": "B key"}).get_json()
    ticket = other_tenant.api.post("/api/v1/tickets", json={"title": "B ticket"}).get_json()
    return {"user": agent["id"], "team": team["id"], "key": key["id"], "ticket": ticket["id"]}


ENDPOINTS = [
    ("get", "/api/v1/users/{user}", None),
    ("patch", "/api/v1/users/{user}", {"name": "stolen"}),
    ("delete", "/api/v1/users/{user}", None),
    ("get", "/api/v1/teams/{team}", None),
    ("patch", "/api/v1/teams/{team}", {"name": "stolen"}),
    ("delete", "/api/v1/teams/{team}", None),
    ("put", "/api/v1/teams/{team}/members/{user}", None),
    ("delete", "/api/v1/teams/{team}/members/{user}", None),
    ("delete", "/api/v1/api-keys/{key}", None),
    ("get", "/api/v1/tickets/{ticket}", None),
]


@pytest.mark.parametrize("method,path,body", ENDPOINTS)
def test_other_tenants_ids_are_404(tenant, other_tenant, b_ids, method, path, body):
    url = path.format(**b_ids)
    kwargs = {"json": body} if body is not None else {}
    resp = getattr(tenant.api, method)(url, **kwargs)
    assert resp.status_code == 404, (method, url, resp.get_json())
    # ...and B still sees its own objects unchanged.
    assert other_tenant.api.get(f"/api/v1/users/{b_ids['user']}").get_json()["name"] == "agent user"
    team = other_tenant.api.get(f"/api/v1/teams/{b_ids['team']}").get_json()
    assert team["name"] == "B team" and team["member_ids"] == []


def test_lists_show_only_own_rows(tenant, other_tenant, b_ids):
    users = {u["id"] for u in tenant.api.get("/api/v1/users").get_json()["items"]}
    assert b_ids["user"] not in users
    assert tenant.api.get("/api/v1/teams").get_json()["items"] == []
    keys = {k["id"] for k in tenant.api.get("/api/v1/api-keys").get_json()["items"]}
    assert b_ids["key"] not in keys
