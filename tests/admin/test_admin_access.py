"""Who may open the admin pages, tried on every one of them, read from the URL map so a page added
later is covered the day it is added: requesters and agents get 403, signed-out users sign in, a
session of another organization is not a session here, another organization's ids answer 404, a
post without its CSRF token is refused, and none of it changes anything."""

from __future__ import annotations

import re

import pytest

from app import create_app
from tests.helpers import app_config, new_ticket
from tests.ui.conftest import make_help_desk

ADMIN = "admin_ui."


@pytest.fixture
def things(help_desk):
    """One of everything an admin page takes an id of, in the help desk's tenant."""
    hd = help_desk
    api = hd.tenant.api
    key = api.post("/api/v1/api-keys", json={"name": "ci"}).get_json()
    hook = api.post("/api/v1/webhooks", json={"url": "https://hooks.example.com/a", "events": ["ticket.created"]})
    assert hook.status_code == 201, hook.get_json()
    rule = api.get("/api/v1/assignment-rules").get_json()["items"][0]
    new_ticket(api, "A ticket")
    return {"user_id": hd.agent.id, "team_id": hd.team["id"], "rule_id": rule["id"], "key_id": key["id"],
            "webhook_id": hook.get_json()["id"], "delivery_id": "00000000-0000-4000-8000-000000000001"}


def admin_routes(app, ids: dict[str, str]) -> list[tuple[str, str]]:
    """Return (method, path under the tenant) of every admin page, ids filled in."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith(ADMIN):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: ids[m.group(1)], rule.rule)
        routes += [(method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return routes


def state(hd) -> dict:
    """What an admin page could change, read through the API."""
    api = hd.tenant.api
    found = {path: api.get(path).get_json() for path in (
        "/api/v1/users?limit=200", "/api/v1/teams", "/api/v1/assignment-rules", "/api/v1/api-keys",
        "/api/v1/webhooks", "/api/v1/media/settings", "/api/v1/tickets")}
    for key in found["/api/v1/api-keys"]["items"]:
        key.pop("last_used_at")  # reading the state uses a key
    return found


FORM = {"name": "Mallory", "email": "m@example.com", "role": "admin", "password": "password123",
        "url": "https://evil.example.com/x", "events": "ticket.created", "title": "t", "team_id": "",
        "strategy": "round_robin", "user_id": "", "max_size": "1", "direction": "up", "grace_seconds": "0"}


def test_there_are_admin_pages_to_check(app, things):
    routes = admin_routes(app, things)
    assert len([r for r in routes if r[0] == "GET"]) >= 10 and len([r for r in routes if r[0] == "POST"]) >= 20


def test_requesters_and_agents_get_403_on_every_admin_page(app, help_desk, sign_in, things):
    before = state(help_desk)
    for person in (help_desk.requester, help_desk.agent):
        client = sign_in(person)
        for method, path in admin_routes(app, things):
            response = client.open(f"/t/{help_desk.slug}{path}", method=method, data=FORM)
            assert response.status_code == 403, (person.user["role"], method, path, response.status_code)
            assert b"Only admins" in response.data
    assert state(help_desk) == before
    # ... and the navigation offers them neither section
    for person in (help_desk.requester, help_desk.agent):
        page = sign_in(person).get(f"/t/{help_desk.slug}/").data.decode()
        assert ">Dashboard<" not in page and ">Settings<" not in page
    admin_home = sign_in(help_desk.admin).get(f"/t/{help_desk.slug}/").data.decode()
    assert ">Dashboard<" in admin_home and ">Settings<" in admin_home


def test_signed_out_users_are_sent_to_sign_in_from_every_admin_page(app, help_desk, things):
    before = state(help_desk)
    client = app.test_client()
    for method, path in admin_routes(app, things):
        response = client.open(f"/t/{help_desk.slug}{path}", method=method, data=FORM)
        assert response.status_code == 302, (method, path)
        assert "/login" in response.headers["Location"], (method, path)
    assert state(help_desk) == before


def test_another_tenants_admin_sees_nothing_here_and_no_id_of_here_under_their_own(app, help_desk, things,
                                                                                   make_tenant, sign_in):
    before = state(help_desk)
    stranger = make_help_desk(make_tenant())
    client = sign_in(stranger.admin)
    for method, path in admin_routes(app, things):
        here = client.open(f"/t/{help_desk.slug}{path}", method=method, data=FORM)
        assert here.status_code == 302 and "/login" in here.headers["Location"], (method, path)
        if "{" in path or not any(v in path for v in things.values()):
            continue
        theirs = client.open(f"/t/{stranger.slug}{path}", method=method, data=FORM)
        assert theirs.status_code == 404, (method, path, theirs.status_code)
    # Their own pages hold nothing of ours.
    for path in ("/admin", "/admin/people", "/admin/teams", "/admin/rules", "/admin/api-keys", "/admin/webhooks",
                 "/admin/audit", "/admin/export?format=json"):
        text = client.get(f"/t/{stranger.slug}{path}").get_data(as_text=True)
        leaked = [v for v in (*things.values(), help_desk.agent.email, "hooks.example.com", "A ticket") if v in text]
        assert not leaked, (path, leaked)
    assert state(help_desk) == before


def test_every_admin_form_needs_its_csrf_token(services, help_desk, things):
    strict = create_app(app_config(services, WTF_CSRF_ENABLED=True)).test_client()
    slug = help_desk.slug
    login = strict.get(f"/t/{slug}/login").data.decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login).group(1)
    assert strict.post(f"/t/{slug}/login", data={"email": help_desk.admin.email, "password": help_desk.admin.password,
                                                  "csrf_token": token}).status_code == 302
    before = state(help_desk)
    posts = [path for method, path in admin_routes(strict.application, things) if method == "POST"]
    for path in posts:
        response = strict.post(f"/t/{slug}{path}", data=FORM)
        assert response.status_code == 400 and b"The CSRF token is missing." in response.data, path
        forged = strict.post(f"/t/{slug}{path}", data={**FORM, "csrf_token": "forged"})
        assert forged.status_code == 400, path
    assert state(help_desk) == before
    # Every form on every admin page carries the token, and with it a form goes through.
    for path in ("/admin/people", "/admin/teams", "/admin/rules", "/admin/api-keys", "/admin/webhooks", "/admin/media",
                 f"/admin/people/{things['user_id']}", f"/admin/rules/{things['rule_id']}",
                 f"/admin/webhooks/{things['webhook_id']}"):
        page = strict.get(f"/t/{slug}{path}").data.decode()
        forms = re.findall(r'<form[^>]*method="post".*?</form>', page, re.S)
        assert forms, path
        assert all('name="csrf_token"' in form for form in forms), path
    page = strict.get(f"/t/{slug}/admin/teams").data.decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    added = strict.post(f"/t/{slug}/admin/teams", data={"csrf_token": token, "name": "Billing"})
    assert added.status_code == 302


def test_another_tenants_ids_in_a_form_name_nothing_here(help_desk, things, make_tenant, sign_in):
    stranger = make_help_desk(make_tenant())
    theirs = {"user_id": stranger.agent.id, "team_id": stranger.team["id"],
              "rule_id": stranger.tenant.api.get("/api/v1/assignment-rules").get_json()["items"][0]["id"]}
    before = state(help_desk)
    admin = sign_in(help_desk.admin)
    base = f"/t/{help_desk.slug}/admin"
    member = admin.post(f"{base}/teams/{things['team_id']}/members", data={"user_id": theirs["user_id"]})
    assert member.status_code == 404
    rule = admin.post(f"{base}/rules", data={"name": "Theirs", "team_id": theirs["team_id"], "strategy": "round_robin"})
    assert rule.status_code == 422 and "No such team." in rule.get_data(as_text=True)
    key = admin.post(f"{base}/api-keys", data={"name": "Theirs", "role": "agent", "user_id": theirs["user_id"]})
    assert key.status_code == 422 and "No such user." in key.get_data(as_text=True)
    order = admin.post(f"{base}/rules/order", data={"rule_ids": [theirs["rule_id"], things["rule_id"]]})
    assert order.status_code == 409
    tried = admin.post(f"{base}/rules/test", data={"title": "x", "priority": "normal", "rule_id": theirs["rule_id"]})
    assert tried.status_code == 404 and "No such assignment rule." in tried.get_data(as_text=True)
    audit = admin.get(f"{base}/audit?actor_id={stranger.admin.id}").get_data(as_text=True)
    assert "Nothing matches these filters." in audit
    assert state(help_desk) == before
