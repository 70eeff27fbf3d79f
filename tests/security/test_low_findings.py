"""Open redirects, CSV formulas, security headers, search counts and the secret key."""

from __future__ import annotations

import csv
import io
import json

import pytest

from app import create_app
from app.tickets import search
from tests.helpers import app_config, new_ticket


def _login(client, tenant, next_value: str):
    return client.post(f"/t/{tenant.slug}/login", query_string={"next": next_value},
                       data={"email": tenant.admin_email, "password": tenant.admin_password},
                       environ_base={"REMOTE_ADDR": "10.3.3.3"})


@pytest.mark.parametrize("target", [
    "/\t/evil.example", "/\n/evil.example", "/\\evil.example", "\\\\evil.example", "//evil.example",
    "https://evil.example/", "http:evil.example", " //evil.example", "\x01//evil.example", "javascript:alert(1)",
    "/%0d%0aSet-Cookie:x=1", "/a\r\nSet-Cookie: x=1", "/t/other-tenant/", "evil.example", "/\t\\evil.example",
    "data:text/html,x", "////evil.example",
])
def test_next_never_leaves_this_tenant_on_this_host(app, tenant, target):
    resp = _login(app.test_client(), tenant, target)
    assert resp.status_code == 302
    assert resp.headers["Location"] == f"/t/{tenant.slug}/", (target, resp.headers["Location"])


def test_next_within_the_tenant_is_followed(app, tenant):
    resp = _login(app.test_client(), tenant, f"/t/{tenant.slug}/tickets/new?x=1")
    assert resp.headers["Location"] == f"/t/{tenant.slug}/tickets/new?x=1"


def test_csv_cells_that_spreadsheets_would_run_are_neutralised_and_json_stays_exact(tenant):
    titles = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", "plain", "a=b"]
    for title in titles:
        new_ticket(tenant.api, title, description="=HYPERLINK(\"http://evil\")", tags=["=tag"], category="@cat")
    rows = list(csv.DictReader(io.StringIO(tenant.api.get("/api/v1/tickets/export?format=csv").data.decode())))
    assert [r["title"] for r in rows] == ["'=1+1", "'+SUM(A1)", "'-2+3", "'@cmd", "'\tx", "'\rx", "plain", "a=b"]
    assert {r["description"] for r in rows} == {"'=HYPERLINK(\"http://evil\")"}
    assert {(r["tags"], r["category"]) for r in rows} == {("'=tag", "'@cat")}
    exported = json.loads(tenant.api.get("/api/v1/tickets/export?format=json").data)
    assert [t["title"] for t in exported] == titles


def test_pages_and_api_responses_carry_security_headers(app, tenant):
    client = app.test_client()
    page = client.get(f"/t/{tenant.slug}/login")
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in page.headers
    api = tenant.api.get("/api/v1/users")
    assert api.headers["Cache-Control"] == "no-store" and api.headers["X-Content-Type-Options"] == "nosniff"
    refused = client.get("/api/v1/users")
    assert refused.status_code == 401 and refused.headers["Cache-Control"] == "no-store"
    secure = client.get(f"/t/{tenant.slug}/login", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


def test_a_requesters_search_counts_only_their_own_tickets(tenant, monkeypatch):
    monkeypatch.setattr(search, "RANK_UP_TO", 3)
    mine = tenant.key_for(tenant.user("requester"))
    for i in range(6):
        new_ticket(tenant.api, f"printer jam {i}")  # someone else's
    new_ticket(mine, "printer jam mine")
    found = mine.get("/api/v1/tickets?q=printer&sort=relevance").get_json()
    assert [t["title"] for t in found["items"]] == ["printer jam mine"]
    assert found["order"] == "relevance"  # one match of its own: ranked, whatever others have
    assert tenant.api.get("/api/v1/tickets?q=printer&sort=relevance").get_json()["order"] == "-created_at"


def test_the_app_refuses_to_start_without_a_secret_key(services, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({**app_config(services), "SECRET_KEY": ""})
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    config = app_config(services)
    del config["SECRET_KEY"]
    assert create_app(config).secret_key == "from-the-environment"


@pytest.mark.parametrize("target", ["//[evil", "http://[::1", "\\\\[", "/\t/[x]", "https://[evil.example/"])
def test_a_next_that_is_not_a_url_goes_home_instead_of_failing(app, tenant, target):
    resp = _login(app.test_client(), tenant, target)
    assert resp.status_code == 302, resp.status_code
    assert resp.headers["Location"] == f"/t/{tenant.slug}/"


@pytest.mark.parametrize("escape", ["/../../t/other-tenant/", "/../../evil", "/%2e%2e/%2E%2E/t/other-tenant/",
                                    "/a/../../../evil", "/./../evil"])
def test_dot_segments_in_next_do_not_climb_out_of_the_tenant(app, tenant, escape):
    resp = _login(app.test_client(), tenant, f"/t/{tenant.slug}{escape}")
    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert location == f"/t/{tenant.slug}/", location


def test_dot_segments_that_stay_inside_the_tenant_are_resolved(app, tenant):
    resp = _login(app.test_client(), tenant, f"/t/{tenant.slug}/tickets/../tickets/new?x=1")
    assert resp.headers["Location"] == f"/t/{tenant.slug}/tickets/new?x=1"


def test_csv_cells_are_all_quoted_so_another_separator_cannot_split_them(tenant):
    new_ticket(tenant.api, "a;=1+1")
    text = tenant.api.get("/api/v1/tickets/export?format=csv").data.decode()
    row = text.splitlines()[1]
    assert row.startswith('"') and '"a;=1+1"' in row


def test_pages_are_not_cached(app, tenant):
    page = app.test_client().get(f"/t/{tenant.slug}/login")
    assert page.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("email", ["a\u2028b@example.com", "ad\u200bmin@example.com", "a\u00a0b@example.com",
                                   "a\u202e@example.com"])
def test_emails_with_invisible_characters_are_refused(tenant, email):
    resp = tenant.api.post("/api/v1/users", json={"email": email, "name": "x", "role": "agent"})
    assert resp.status_code == 422 and "email" in resp.get_json()["errors"]


def test_cross_tenant_attempts_are_logged_with_ids_and_route_never_secrets(app, tenant, other_tenant, caplog):
    client = app.test_client()
    with caplog.at_level("INFO", logger="tms.security"):
        assert client.get(f"/t/{other_tenant.slug}/api/v1/users",
                          headers={"Authorization": f"Bearer {tenant.key}"}).status_code == 404
        assert client.post(f"/t/{tenant.slug}/login", data={"email": tenant.admin_email,
                                                            "password": tenant.admin_password}).status_code == 302
        client.get(f"/t/{other_tenant.slug}/")
    logged = [r for r in caplog.records if r.name == "tms.security"]
    assert len(logged) == 2
    key_attempt, session_attempt = (r.getMessage() for r in logged)
    assert "api_key" in key_attempt and other_tenant.slug in key_attempt and "/api/v1/users" in key_attempt
    assert logged[0].levelname == "WARNING" and logged[1].levelname == "INFO" and "session" in session_attempt
    for message in (key_attempt, session_attempt):
        assert tenant.key not in message and tenant.key[16:] not in message
        assert client.get_cookie("session").value not in message
