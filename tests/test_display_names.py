"""Names people read on pages (a person's, team's, rule's, key's, organization's) show something:
one visible character at least, and no bidirectional controls, which would reorder the text around
them on every page ("Trojan Source"). Agents set their own names, so this is between users."""

from __future__ import annotations

import secrets

from app.schemas import NAME_PATTERN

BLANK = ["   ", "\u200b", "\u2028\u2029\ufeff\u200b", "\u00a0\u3000", "\u2060\u00ad", "\t\n", "\u3164",
         "\u2800", "\ufe0f\u034f", "\uffa0\u115f", "\u061c", "\U000e0041\U000e007f", "\U0001d173\U0001bca3"]
BIDI = ["Ada\u202eevil", "\u2066Ada\u2069", "Bo\u202d"]
FINE = ["Ada Lovelace", " padded ", "Zoë 李", "نور", "a\u200db"]  # ZWJ between letters is how emoji join


def _cases(tenant) -> list[tuple[str, str, dict]]:
    """(method, path, body with a marker where the name goes)."""
    agent = tenant.user("agent")
    team = tenant.api.post("/api/v1/teams", json={"name": "Desk"}).get_json()
    rule = tenant.api.post("/api/v1/assignment-rules", json={"name": "r", "team_id": team["id"],
                                                             "strategy": "round_robin"}).get_json()
    return [
        ("post", "/api/v1/users", {"email": "EMAIL", "name": "MARK", "role": "agent"}),
        ("patch", f"/api/v1/users/{agent['id']}", {"name": "MARK"}),
        ("post", "/api/v1/teams", {"name": "MARK"}),
        ("patch", f"/api/v1/teams/{team['id']}", {"name": "MARK"}),
        ("post", "/api/v1/assignment-rules", {"name": "MARK", "team_id": team["id"], "strategy": "round_robin"}),
        ("patch", f"/api/v1/assignment-rules/{rule['id']}", {"name": "MARK"}),
        ("post", "/api/v1/api-keys", {"name": "MARK"}),
    ]


def _body(body: dict, name: str) -> dict:
    return {k: name if v == "MARK" else f"{secrets.token_hex(4)}@example.com" if v == "EMAIL" else v
            for k, v in body.items()}


def test_a_blank_or_reordering_name_is_422_everywhere_and_changes_nothing(tenant):
    cases = _cases(tenant)
    before = _names(tenant)
    for method, path, body in cases:
        for name in BLANK + BIDI:
            resp = getattr(tenant.api, method)(path, json=_body(body, name))
            assert resp.status_code == 422, (path, name, resp.get_json())
            expected = "Bidirectional control" if name in BIDI else "Control" if "\t" in name else "must not be blank"
            assert expected in resp.get_json()["errors"]["name"][0], (path, name)
    assert _names(tenant) == before


def _names(tenant) -> dict[str, list[str]]:
    """Every name of each kind the cases write (keys' other fields move as the test uses its key)."""
    return {kind: sorted(item["name"] for item in tenant.api.get(f"/api/v1/{kind}?limit=200").get_json()["items"])
            for kind in ("users", "teams", "assignment-rules", "api-keys")}


def test_names_in_any_script_are_kept_as_given(tenant):
    for n, (method, path, body) in enumerate(_cases(tenant)):
        for name in FINE:
            name = f"{name}{n}"  # teams' names are unique
            resp = getattr(tenant.api, method)(path, json=_body(body, name))
            assert resp.status_code in (200, 201), (path, name, resp.get_json())
            assert resp.get_json()["name"] == name


def test_an_organization_and_its_first_admin_are_named_so_too(app):
    client = app.test_client()
    for name in ("\u200b", "Acme\u202e"):
        body = {"name": name, "slug": f"n{secrets.token_hex(5)}", "admin_email": "a@b.example",
                "admin_password": "a long password"}
        resp = client.post("/api/v1/signup", json=body)
        assert resp.status_code == 422 and "name" in resp.get_json()["errors"], resp.get_json()
        resp = client.post("/api/v1/signup", json={**body, "name": "Acme", "admin_name": name})
        assert resp.status_code == 422 and "admin_name" in resp.get_json()["errors"], resp.get_json()
        page = client.post("/signup", data=body, environ_base={"REMOTE_ADDR": "10.9.8.5"})  # the page says so too
        said = "must not be blank" if name == "\u200b" else "Bidirectional control characters are not allowed"
        assert page.status_code == 422 and said in page.get_data(as_text=True), page.status_code


def test_the_document_states_the_rule(tenant):
    schemas = tenant.api.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    named = [n for n, s in schemas.items() if s.get("properties", {}).get("name", {}).get("pattern") == NAME_PATTERN]
    assert len(named) >= 7, named  # users, teams and rules (new and patch), keys, signup
