"""The admin's pages with the Flask test client: each form does what the API does, refusals come back
beside the field with the API's status, and everything people typed is shown as text."""

from __future__ import annotations

import csv
import io
import json
import re
from html import unescape

import pytest

from tests.helpers import new_ticket

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def admin(help_desk, sign_in):
    return sign_in(help_desk.admin)


def page(client, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, (path, response.status_code, response.data[:1500])
    return response.get_data(as_text=True)


def rows(text: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr data-number="(\d+)">', text)]


# --- the dashboard -----------------------------------------------------------------------------


def test_the_dashboard_shows_figures_charts_and_every_ticket(help_desk, admin):
    hd = help_desk
    for i, priority in enumerate(("low", "normal", "high", "urgent", "high")):
        new_ticket(hd.tenant.api, f"Printer {i}", priority=priority)
    text = page(admin, f"/t/{hd.slug}/admin")
    assert re.search(r'id="stat-open">5<', text) and re.search(r'id="stat-unassigned">5<', text)
    for chart in ("flow", "load"):
        assert re.search(rf'<svg class="chart-svg"[^>]*role="img" aria-labelledby="{chart}-title {chart}-desc"', text)
    assert "Tickets created against closed per day" in text and "Show the numbers" in text
    # a day's column opens the table filtered to that day; an agent's bar to their open tickets
    day = r"\d{4}-\d\d-\d\d"
    assert re.search(rf'<a href="/t/[^"]+/admin\?created_after={day}&amp;created_before={day}#tickets"'
                     r' aria-label="[A-Z][a-z]{2} \d+: \d+ created, \d+ closed"', text)
    assert f"assignee_id={hd.agent.id}&amp;status=new&amp;status=open&amp;status=pending#tickets" in text
    assert rows(text) == [5, 4, 3, 2, 1]
    assert "computed at" in text


def test_the_table_filters_sorts_searches_and_pages_with_everything_in_the_url(help_desk, admin):
    hd = help_desk
    api = hd.tenant.api
    made = [new_ticket(api, f"Ticket {i}" + (" toner" if i % 3 == 0 else ""), priority=("low", "high")[i % 2],
                       category="billing" if i % 4 == 0 else None, tags=["vip"] if i % 5 == 0 else [])
            for i in range(12)]
    base = f"/t/{hd.slug}/admin"
    high = rows(page(admin, f"{base}?priority=high&status=new"))
    assert high == [t["number"] for t in reversed(made) if t["priority"] == "high"]
    assert rows(page(admin, f"{base}?q=toner")) and set(rows(page(admin, f"{base}?q=toner"))) == {
        t["number"] for t in made if "toner" in t["title"]}
    assert rows(page(admin, f"{base}?category=billing")) == [t["number"] for t in reversed(made)
                                                              if t["category"] == "billing"]
    assert rows(page(admin, f"{base}?tag=vip")) == [t["number"] for t in reversed(made) if "vip" in t["tags"]]
    assert rows(page(admin, f"{base}?sort=number")) == sorted(t["number"] for t in made)
    assert rows(page(admin, f"{base}?status=closed")) == []
    # paging: five a page, forward by the page's own link, nothing repeated or skipped
    seen, path = [], f"{base}?priority=low&limit=5&sort=number"
    while path:
        text = page(admin, path)
        seen += rows(text)
        found = re.search(r'<a class="button" href="([^"]+)#tickets" rel="next">', text)
        path = unescape(found.group(1)) if found else None
        if path:
            assert "priority=low" in path and "sort=number" in path and "cursor=" in path
    assert seen == sorted(t["number"] for t in made if t["priority"] == "low")
    # bad filters are said beside their field, with the API's status
    refused = admin.get(f"{base}?priority=whenever&assignee_id=nobody")
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    for name in ("priority", "assignee_id"):
        assert f'<p class="field-error" id="{name}-error">' in text
    assert admin.get(f"{base}?cursor=forged").status_code in (404, 422)


def test_exports_hold_exactly_the_filtered_rows(help_desk, admin):
    hd = help_desk
    api = hd.tenant.api
    made = [new_ticket(api, f"=1+1 export {i}", priority=("low", "urgent")[i % 2]) for i in range(7)]
    wanted = sorted(t["number"] for t in made if t["priority"] == "urgent")
    query = "priority=urgent&status=new&q=export"
    assert sorted(rows(page(admin, f"/t/{hd.slug}/admin?{query}"))) == wanted
    got = admin.get(f"/t/{hd.slug}/admin/export?format=csv&{query}")
    assert got.status_code == 200 and got.headers["Content-Type"].startswith("text/csv")
    assert got.headers["Content-Disposition"].startswith("attachment;")
    table = list(csv.DictReader(io.StringIO(got.get_data(as_text=True))))
    assert [int(r["number"]) for r in table] == wanted
    assert all(r["title"].startswith("'=1+1") for r in table)  # neutralised for spreadsheets
    got = admin.get(f"/t/{hd.slug}/admin/export?format=json&{query}")
    assert [t["number"] for t in json.loads(got.data)] == wanted
    text = page(admin, f"/t/{hd.slug}/admin?{query}")
    assert '/admin/export?priority=urgent&amp;status=new&amp;q=export&amp;format=csv' in text


def test_a_head_of_the_export_takes_no_slot_and_starts_no_export(help_desk, admin, monkeypatch):
    from app.tickets import export

    new_ticket(help_desk.tenant.api, "one")

    def no_export():
        raise AssertionError("HEAD opened an export connection")

    monkeypatch.setattr(export, "open_connection", no_export)
    head = admin.head(f"/t/{help_desk.slug}/admin/export?format=csv&priority=urgent")
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Type"].startswith("text/csv")
    assert head.headers["Content-Disposition"].startswith("attachment;")
    assert admin.head(f"/t/{help_desk.slug}/admin/export?format=xml").status_code == 422


def test_a_period_is_chosen_and_a_bad_one_is_said_beside_its_field(help_desk, admin):
    text = page(admin, f"/t/{help_desk.slug}/admin?from=2026-01-01&to=2026-01-31")
    assert "Figures for 2026-01-01 to 2026-01-31" in text
    assert "Figures for" in page(admin, f"/t/{help_desk.slug}/admin?period=7")
    bad = admin.get(f"/t/{help_desk.slug}/admin?from=yesterday")
    assert bad.status_code == 422 and 'id="from-error"' in bad.get_data(as_text=True)


# --- people and teams --------------------------------------------------------------------------


def test_people_are_created_changed_and_deactivated(help_desk, admin):
    hd = help_desk
    base = f"/t/{hd.slug}/admin/people"
    created = admin.post(base, data={"email": "new@example.com", "name": "Nia New", "role": "agent",
                                     "password": "password123", "skills": "billing, printers", "capacity": "3",
                                     "available": "on"})
    assert created.status_code == 302
    user = next(u for u in hd.tenant.api.get("/api/v1/users?limit=200").get_json()["items"]
                if u["email"] == "new@example.com")
    assert (user["role"], user["skills"], user["capacity"], user["available"]) == ("agent", ["billing", "printers"],
                                                                                  3, True)
    taken = admin.post(base, data={"email": "new@example.com", "name": "Again", "role": "agent"})
    assert taken.status_code == 409 and "A user with this email already exists." in taken.get_data(as_text=True)
    bad = admin.post(base, data={"email": "x@example.com", "name": "X", "role": "boss", "capacity": "-1"})
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert 'id="role-error"' in text and 'id="capacity-error"' in text and 'value="x@example.com"' in text
    assert re.search(r'<input type="checkbox" id="available" name="available"(?! checked)', text), \
        "an unticked available stays unticked"
    ticked = admin.post(base, data={"email": "x@example.com", "name": "X", "role": "boss", "available": "on"})
    assert re.search(r'<input type="checkbox" id="available" name="available" checked', ticked.get_data(as_text=True))
    changed = admin.post(f"{base}/{user['id']}", data={"name": "Nia", "email": "new@example.com", "role": "admin",
                                                       "skills": "", "capacity": "", "shown": "available"})
    assert changed.status_code == 302
    after = hd.tenant.api.get(f"/api/v1/users/{user['id']}").get_json()
    assert (after["name"], after["role"], after["skills"], after["capacity"], after["available"]) == (
        "Nia", "admin", [], None, False)
    assert admin.post(f"{base}/{user['id']}/deactivate").status_code == 302
    assert hd.tenant.api.get(f"/api/v1/users/{user['id']}").status_code == 404
    # the last admin cannot be deactivated: said on the page, with the API's 409
    last = admin.post(f"{base}/{hd.admin.id}/deactivate")
    assert last.status_code == 409 and "at least one admin" in last.get_data(as_text=True)


@pytest.mark.parametrize("capacity", ["\uff13", "\u0663", "3_0", "0x3"])
def test_a_number_in_a_form_has_one_spelling(help_desk, admin, capacity):
    """As in paths and query strings: fullwidth or Arabic-Indic digits are not read as 3."""
    bad = admin.post(f"/t/{help_desk.slug}/admin/people", data={
        "email": "n@example.com", "name": "N", "role": "agent", "password": "password123", "capacity": capacity})
    assert bad.status_code == 422 and 'id="capacity-error"' in bad.get_data(as_text=True)
    assert all(u["email"] != "n@example.com"
               for u in help_desk.tenant.api.get("/api/v1/users?limit=200").get_json()["items"])


def test_teams_and_their_members(help_desk, admin):
    hd = help_desk
    base = f"/t/{hd.slug}/admin/teams"
    assert admin.post(base, data={"name": "Billing", "description": "Money"}).status_code == 302
    team = next(t for t in hd.tenant.api.get("/api/v1/teams").get_json()["items"] if t["name"] == "Billing")
    assert admin.post(f"{base}/{team['id']}/members", data={"user_id": hd.agent.id}).status_code == 302
    requester = admin.post(f"{base}/{team['id']}/members", data={"user_id": hd.requester.id})
    assert requester.status_code == 422 and "Only agents and admins can be team members." in requester.get_data(
        as_text=True)
    assert hd.tenant.api.get(f"/api/v1/teams/{team['id']}").get_json()["member_ids"] == [hd.agent.id]
    assert admin.post(f"{base}/{team['id']}", data={"name": "Money", "description": ""}).status_code == 302
    assert admin.post(f"{base}/{team['id']}/members/{hd.agent.id}/remove").status_code == 302
    after = hd.tenant.api.get(f"/api/v1/teams/{team['id']}").get_json()
    assert (after["name"], after["description"], after["member_ids"]) == ("Money", None, [])
    duplicate = admin.post(base, data={"name": "Support"})
    assert duplicate.status_code == 409 and "already exists" in duplicate.get_data(as_text=True)
    assert admin.post(f"{base}/{team['id']}/delete").status_code == 302
    assert hd.tenant.api.get(f"/api/v1/teams/{team['id']}").status_code == 404
    routed = admin.post(f"{base}/{hd.team['id']}/delete")  # the help desk's rule routes everything to it
    assert routed.status_code == 409 and "change or delete them first" in routed.get_data(as_text=True)
    assert hd.tenant.api.get(f"/api/v1/teams/{hd.team['id']}").status_code == 200


# --- assignment rules --------------------------------------------------------------------------


def test_rules_are_created_tested_edited_reordered_switched_and_deleted(help_desk, admin):
    hd = help_desk
    base = f"/t/{hd.slug}/admin/rules"
    created = admin.post(base, data={"name": "Urgent billing", "team_id": hd.team["id"], "strategy": "least_loaded",
                                     "position": "5", "priority": ["urgent", "high"], "category": "billing",
                                     "tags_any": "", "keywords_any": "invoice, refund", "enabled": "on"})
    assert created.status_code == 302, created.data[:2000]
    rules = hd.tenant.api.get("/api/v1/assignment-rules").get_json()["items"]
    rule = next(r for r in rules if r["name"] == "Urgent billing")
    assert rule["conditions"] == {"priority": ["high", "urgent"], "category": ["billing"],
                                  "keywords_any": ["invoice", "refund"]}
    assert (rule["strategy"], rule["position"], rule["enabled"]) == ("least_loaded", 5, True)

    tried = admin.post(f"{base}/test", data={"title": "Refund please", "priority": "urgent", "category": "billing",
                                             "tags": "", "rule_id": rule["id"]})
    text = tried.get_data(as_text=True)
    assert tried.status_code == 200 and 'id="dry-run"' in text
    assert "Urgent billing: matches, but an earlier rule decides." in text  # "Everything" is at position 0
    assert re.search(r'id="dry-team">Support<', text) and 'id="dry-candidates"' in text

    assert admin.post(f"{base}/{rule['id']}/move", data={"direction": "up"}).status_code == 302
    order = [r["name"] for r in hd.tenant.api.get("/api/v1/assignment-rules").get_json()["items"]]
    assert order == ["Urgent billing", "Everything to Support"]
    text = admin.post(f"{base}/test", data={"title": "Refund please", "priority": "urgent", "category": "billing",
                                            "rule_id": rule["id"]}).get_data(as_text=True)
    assert "Urgent billing: matches, and decides." in text
    ids = [r["id"] for r in hd.tenant.api.get("/api/v1/assignment-rules").get_json()["items"]]
    assert admin.post(f"{base}/order", data={"rule_ids": list(reversed(ids))}).status_code == 302
    assert [r["id"] for r in hd.tenant.api.get("/api/v1/assignment-rules").get_json()["items"]] == list(reversed(ids))
    stale = admin.post(f"{base}/order", data={"rule_ids": ids[:1]})
    assert stale.status_code == 409 and "The rules changed meanwhile" in stale.get_data(as_text=True)

    edited = admin.post(f"{base}/{rule['id']}", data={"name": "Urgent money", "team_id": hd.team["id"],
                                                      "strategy": "skills", "required_skills": "", "position": "1"})
    assert edited.status_code == 422 and "needs at least one required skill" in edited.get_data(as_text=True)
    assert admin.post(f"{base}/{rule['id']}", data={"name": "Urgent money", "team_id": hd.team["id"],
                                                    "strategy": "skills", "required_skills": "billing",
                                                    "position": "1", "priority": "urgent",
                                                    "shown": ["enabled", "conditions"]}).status_code == 302
    after = hd.tenant.api.get(f"/api/v1/assignment-rules/{rule['id']}").get_json()
    assert (after["name"], after["strategy"], after["required_skills"], after["enabled"], after["conditions"]) == (
        "Urgent money", "skills", ["billing"], False, {"priority": ["urgent"]})
    assert admin.post(f"{base}/{rule['id']}/enabled", data={"enabled": "on"}).status_code == 302
    assert hd.tenant.api.get(f"/api/v1/assignment-rules/{rule['id']}").get_json()["enabled"] is True
    missing = admin.post(base, data={"name": "", "strategy": "round_robin"})
    assert missing.status_code == 422
    assert 'id="name-error"' in missing.get_data(as_text=True) and 'id="team_id-error"' in missing.get_data(
        as_text=True)
    too_long = admin.post(base, data={"name": "Long", "team_id": hd.team["id"], "strategy": "round_robin",
                                      "category": "c" * 300, "keywords_any": "ok, " + "k" * 300})
    text = too_long.get_data(as_text=True)  # each condition's refusal in words, not a Python dict of items
    assert too_long.status_code == 422 and "{0:" not in text and "{1:" not in text
    assert 'id="category-error"' in text and 'id="keywords_any-error"' in text
    assert admin.post(f"{base}/{rule['id']}/delete").status_code == 302
    assert hd.tenant.api.get(f"/api/v1/assignment-rules/{rule['id']}").status_code == 404


# --- API keys, webhooks, media, audit ----------------------------------------------------------


def test_a_key_is_shown_once_and_a_revoked_key_gets_401(help_desk, admin, client):
    hd = help_desk
    base = f"/t/{hd.slug}/admin/api-keys"
    created = admin.post(base, data={"name": "CRM sync", "role": "agent", "user_id": hd.agent.id})
    assert created.status_code == 201
    key = re.search(r'id="new-key" class="secret" value="([^"]+)"', created.get_data(as_text=True)).group(1)
    assert 'data-copy="new-key"' in created.get_data(as_text=True)
    assert client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    listed = page(admin, base)
    assert key not in listed and "CRM sync" in listed
    assert re.search(r"CRM sync</td>.*?last used.*?ago", listed, re.S)
    too_high = admin.post(base, data={"name": "x", "role": "admin", "user_id": hd.agent.id})
    assert too_high.status_code == 422 and "cannot have a higher role" in too_high.get_data(as_text=True)
    key_id = next(k["id"] for k in hd.tenant.api.get("/api/v1/api-keys").get_json()["items"] if k["name"] == "CRM sync")
    rotated = admin.post(f"{base}/{key_id}/rotate", data={"grace_seconds": "0"})
    assert rotated.status_code == 201
    successor = re.search(r'id="new-key" class="secret" value="([^"]+)"', rotated.get_data(as_text=True)).group(1)
    assert client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    successor_id = next(k["id"] for k in hd.tenant.api.get("/api/v1/api-keys").get_json()["items"]
                        if k["name"] == "CRM sync" and not k["revoked_at"])
    assert admin.post(f"{base}/{successor_id}/revoke").status_code == 302
    assert client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {successor}"}).status_code == 401
    again = admin.post(f"{base}/{successor_id}/revoke")
    assert again.status_code == 404


def test_a_reloaded_form_that_made_a_secret_makes_nothing_more(help_desk, admin):
    """Those pages answer with the secret (201), so a reload posted the form again: each made another
    live key or webhook, the earlier one kept by no one. Each form now carries a token used once."""
    hd = help_desk
    keys, hooks = f"/t/{hd.slug}/admin/api-keys", f"/t/{hd.slug}/admin/webhooks"

    def once(path: str, action: str) -> str:
        form = re.search(rf'action="{re.escape(action)}"[^>]*>.*?name="once" value="([^"]+)"', page(admin, path), re.S)
        return form.group(1)

    def live_keys() -> list[str]:
        return [k["id"] for k in hd.tenant.api.get("/api/v1/api-keys").get_json()["items"] if not k["revoked_at"]]

    key_form = {"name": "Reloaded", "role": "agent", "user_id": hd.agent.id, "once": once(keys, keys)}
    before = live_keys()
    assert admin.post(keys, data=key_form).status_code == 201
    made = [k for k in live_keys() if k not in before]
    again = admin.post(keys, data=key_form)
    assert again.status_code == 409 and "sent already" in again.get_data(as_text=True)
    assert len(live_keys()) == len(before) + 1
    rotate = f"{keys}/{made[0]}/rotate"
    rotation = {"grace_seconds": "3600", "once": once(keys, rotate)}
    assert admin.post(rotate, data=rotation).status_code == 201
    assert admin.post(rotate, data=rotation).status_code == 409
    assert len(live_keys()) == len(before) + 2  # the key and one successor
    hook_form = {"url": "https://hooks.example.com/once", "events": ["ticket.created"], "once": once(hooks, hooks)}
    assert admin.post(hooks, data=hook_form).status_code == 201
    assert admin.post(hooks, data=hook_form).status_code == 409
    assert admin.post(hooks, data={**hook_form, "once": once(hooks, hooks)}).status_code == 201  # a new form
    assert [h["url"] for h in hd.tenant.api.get("/api/v1/webhooks").get_json()["items"]].count(hook_form["url"]) == 2
    forged = admin.post(hooks, data={**hook_form, "once": "not a token"})
    assert forged.status_code == 422


def test_webhooks_their_log_and_redelivery(help_desk, admin, run_jobs):
    hd = help_desk
    base = f"/t/{hd.slug}/admin/webhooks"
    created = admin.post(base, data={"url": "https://hooks.example.com/tickets", "events": ["ticket.created"],
                                     "description": "CRM"})
    assert created.status_code == 201
    assert re.search(r'id="new-secret" class="secret" value="whsec_', created.get_data(as_text=True))
    hook = hd.tenant.api.get("/api/v1/webhooks").get_json()["items"][0]
    assert page(admin, base).count("whsec_") == 0
    private = admin.post(base, data={"url": "http://127.0.0.1/x", "events": ["ticket.created"]})
    assert private.status_code == 422 and 'id="url-error"' in private.get_data(as_text=True)
    no_events = admin.post(base, data={"url": "https://hooks.example.com/b"})
    assert no_events.status_code == 422 and 'id="events-error"' in no_events.get_data(as_text=True)

    new_ticket(hd.tenant.api, "Hello hook")
    run_jobs("webhooks")  # one attempt (the name does not resolve here)
    text = page(admin, f"{base}/{hook['id']}")
    attempt = re.search(r'/deliveries/([0-9a-f-]{36})/redeliver', text).group(1)
    assert "ticket.created" in text
    assert admin.post(f"{base}/{hook['id']}/deliveries/{attempt}/redeliver").status_code == 302
    run_jobs("webhooks")
    attempts = hd.tenant.api.get(f"/api/v1/webhooks/{hook['id']}/deliveries").get_json()["items"]
    assert len(attempts) == 2  # the retry it was waiting for, brought forward to now
    assert admin.post(f"{base}/{hook['id']}", data={"url": "https://hooks.example.com/v2",
                                                    "events": ["ticket.created", "ticket.closed"],
                                                    "shown": ["include_internal", "enabled"]}).status_code == 302
    after = hd.tenant.api.get(f"/api/v1/webhooks/{hook['id']}").get_json()
    assert (after["url"], after["events"], after["enabled"]) == (
        "https://hooks.example.com/v2", ["ticket.closed", "ticket.created"], False)
    assert admin.post(f"{base}/{hook['id']}/delete").status_code == 302
    assert hd.tenant.api.get(f"/api/v1/webhooks/{hook['id']}").status_code == 404


def test_media_settings(help_desk, admin, app):
    hd = help_desk
    base = f"/t/{hd.slug}/admin/media"
    assert admin.post(base, data={"allowed_types": ["image/png", "application/pdf"], "max_size": "5000"}
                      ).status_code == 302
    settings = hd.tenant.api.get("/api/v1/media/settings").get_json()
    assert (settings["allowed_types"], settings["max_size"]) == (["image/png", "application/pdf"], 5000)
    too_big = admin.post(base, data={"allowed_types": "image/png", "max_size": str(app.config["MEDIA_MAX_SIZE"] + 1)})
    assert too_big.status_code == 422 and 'id="max_size-error"' in too_big.get_data(as_text=True)
    assert admin.post(base, data={"every_type": "on", "max_size": ""}).status_code == 302
    settings = hd.tenant.api.get("/api/v1/media/settings").get_json()
    assert (settings["allowed_types"], settings["max_size"]) == (None, None)


def test_the_audit_log_filters_and_pages(help_desk, admin):
    hd = help_desk
    for i in range(7):
        hd.tenant.api.post("/api/v1/teams", json={"name": f"Team {i}"})
    base = f"/t/{hd.slug}/admin/audit"
    text = page(admin, f"{base}?entity_type=team&action=created&limit=3")
    assert text.count("<tr>") - 1 == 3 and "Team 6" in text  # newest first; the header row is one
    seen = []
    path = f"{base}?entity_type=team&action=created&limit=3"
    while path:
        text = page(admin, path)
        seen += re.findall(r"Team \d", text)
        found = re.search(r'<a class="button" href="([^"]+)" rel="next">', text)
        path = unescape(found.group(1)) if found else None
    assert sorted(set(seen)) == [f"Team {i}" for i in range(7)]
    mine = page(admin, f"{base}?actor_id={hd.admin.id}&entity_type=team")
    assert "Team 0" in mine and "Support" in mine
    assert "Team 0" not in page(admin, f"{base}?actor_id={hd.agent.id}")
    assert admin.get(f"{base}?entity_id=nope").status_code == 422


# --- what people typed stays text --------------------------------------------------------------


def test_script_in_every_field_the_admin_pages_show_stays_inert(help_desk, admin, run_jobs):
    hd = help_desk
    api = hd.tenant.api
    user = hd.tenant.user("agent", name=HOSTILE, skills=["<b>bold</b>"])
    team = api.post("/api/v1/teams", json={"name": HOSTILE, "description": HOSTILE}).get_json()
    api.put(f"/api/v1/teams/{team['id']}/members/{user['id']}")
    rule = api.post("/api/v1/assignment-rules", json={"name": HOSTILE, "team_id": team["id"], "strategy": "round_robin",
                                                      "conditions": {"keywords_any": [HOSTILE]}}).get_json()
    api.post("/api/v1/api-keys", json={"name": HOSTILE, "user_id": user["id"], "role": "agent"})
    hook = api.post("/api/v1/webhooks", json={"url": "https://hooks.example.com/x?q=%3Cscript%3E",
                                              "events": ["ticket.created"], "description": HOSTILE}).get_json()
    new_ticket(api, HOSTILE, category=HOSTILE[:100])
    run_jobs("webhooks")
    pages = ["/admin", "/admin/people", f"/admin/people/{user['id']}", "/admin/teams", "/admin/rules",
             f"/admin/rules/{rule['id']}", "/admin/api-keys", "/admin/webhooks", f"/admin/webhooks/{hook['id']}",
             "/admin/audit", "/admin/audit?entity_type=assignment_rule"]
    for path in pages:
        text = page(admin, f"/t/{hd.slug}{path}")
        assert "<script>alert" not in text and "<img src=x" not in text and "<b>bold" not in text, path
        assert "&lt;script&gt;" in text or "\\u003cscript\\u003e" in text, path
    dry = admin.post(f"/t/{hd.slug}/admin/rules/test", data={"title": HOSTILE, "description": HOSTILE,
                                                            "priority": "normal"}).get_data(as_text=True)
    assert "<script>alert" not in dry and "&lt;script&gt;" in dry


def test_a_lookalike_of_a_persons_id_is_refused_beside_its_field(help_desk, admin):
    hd = help_desk
    team = hd.tenant.api.post("/api/v1/teams", json={"name": "Lookalikes"}).get_json()
    for spelling in (f"{{{hd.agent.id}}}", f"urn:uuid:{hd.agent.id}", hd.agent.id.replace("-", ""), "None"):
        refused = admin.post(f"/t/{hd.slug}/admin/teams/{team['id']}/members", data={"user_id": spelling})
        assert refused.status_code == 422 and "Choose an agent or admin." in refused.get_data(as_text=True)
    assert hd.tenant.api.get(f"/api/v1/teams/{team['id']}").get_json()["member_ids"] == []


def test_an_input_s_extra_attributes_are_attributes_not_text(help_desk, admin):
    """They were printed escaped (`autocomplete=&#34;new-password&#34;`), so a password manager
    could fill the signed-in admin's own password into a new person's password box."""
    slug = help_desk.slug
    expected = {
        "admin/people": {"password": {"autocomplete": "new-password"}, "capacity": {"min": "0"}},
        f"admin/people/{help_desk.agent.id}": {"capacity": {"min": "0"}},
        "admin/webhooks": {"secret": {"autocomplete": "new-password"}},
        "admin/media": {"max_size": {"min": "1"}},
    }
    for path, inputs in expected.items():
        text = page(admin, f"/t/{slug}/{path}")
        assert "&#34;" not in re.sub(r'value="[^"]*"', "", text), path
        for name, attributes in inputs.items():
            tag = re.search(rf'<input [^>]*name="{name}"[^>]*>', text).group(0)
            for attribute, value in attributes.items():
                assert f' {attribute}="{value}"' in tag, (path, tag)


def test_the_settings_menu_marks_the_page_it_is_on(help_desk, admin):
    """A person's page, a webhook's, and any page a refused form re-renders lost their place in the menu."""
    hd = help_desk
    hook = hd.tenant.api.post("/api/v1/webhooks", json={"url": "https://hooks.example.com/t",
                                                         "events": ["ticket.created"]}).get_json()
    rule = hd.tenant.api.get("/api/v1/assignment-rules").get_json()["items"][0]
    base = f"/t/{hd.slug}/admin"
    shown = {
        "People": [admin.get(f"{base}/people"), admin.get(f"{base}/people/{hd.agent.id}"),
                   admin.post(f"{base}/people", data={"email": "x", "name": "X", "role": "agent"})],
        "Teams": [admin.get(f"{base}/teams"), admin.post(f"{base}/teams", data={"name": ""})],
        "Assignment rules": [admin.get(f"{base}/rules"), admin.get(f"{base}/rules/{rule['id']}")],
        "API keys": [admin.get(f"{base}/api-keys")],
        "Webhooks": [admin.get(f"{base}/webhooks"), admin.get(f"{base}/webhooks/{hook['id']}"),
                     admin.post(f"{base}/webhooks", data={"url": "not a url"})],
        "Media": [admin.get(f"{base}/media")],
        "Audit log": [admin.get(f"{base}/audit")],
    }
    for label, responses in shown.items():
        for response in responses:
            menu = response.get_data(as_text=True).split('class="settings-menu"', 1)[1].split("</nav>", 1)[0]
            current = re.findall(r'<a href="[^"]*" aria-current="page">([^<]+)</a>', menu)
            assert current == [label], (label, response.status_code, current)


def test_refusals_and_empty_periods_say_what_to_do(help_desk, admin):
    hd = help_desk
    no_events = admin.post(f"/t/{hd.slug}/admin/webhooks", data={"url": "https://hooks.example.com/x"})
    assert no_events.status_code == 422
    assert "Choose at least one event type (at most" in no_events.get_data(as_text=True)
    backwards = admin.get(f"/t/{hd.slug}/admin?from=2026-12-01&to=2026-01-01").get_data(as_text=True)
    assert "“from” is after “to”, so the period is empty" in backwards
    assert "period is empty" not in admin.get(f"/t/{hd.slug}/admin").get_data(as_text=True)


def test_an_admin_gives_someone_a_new_password_which_signs_them_out(help_desk, admin, sign_in, app):
    hd = help_desk
    agent = sign_in(hd.agent)
    url = f"/t/{hd.slug}/admin/people/{hd.agent.id}/password"
    for typed, message in (("", "This is required."), ("   ", "This is required."), ("short", "Length must be")):
        refused = admin.post(url, data={"password": typed})
        assert refused.status_code == 422 and message in refused.get_data(as_text=True), typed
        assert 'id="password-error"' in refused.get_data(as_text=True)
    assert agent.get(f"/t/{hd.slug}/").status_code == 200  # nothing changed yet
    assert admin.post(url, data={"password": "a brand new password"}).status_code == 302
    assert agent.get(f"/t/{hd.slug}/").status_code == 302  # signed out everywhere
    fresh = app.test_client()
    assert fresh.post(f"/t/{hd.slug}/login", data={"email": hd.agent.email, "password": hd.agent.password}
                      ).status_code != 302  # the old password no longer works
    assert fresh.post(f"/t/{hd.slug}/login", data={"email": hd.agent.email, "password": "a brand new password"}
                      ).status_code == 302
    requester = sign_in(hd.requester)  # only admins may
    assert requester.post(url, data={"password": "a brand new password 2"}).status_code in (403, 404)


def test_an_admin_changes_their_own_password_only_where_the_current_one_is_asked(help_desk, admin, app):
    """The people page set an admin's own password with no current password and no count of wrong guesses:
    anyone at an admin's open browser could replace it."""
    hd = help_desk
    own = admin.get(f"/t/{hd.slug}/admin/people/{hd.admin.id}").get_data(as_text=True)
    assert f"/admin/people/{hd.admin.id}/password" not in own and f'href="/t/{hd.slug}/me/password"' in own
    assert f"/admin/people/{hd.agent.id}/password" in admin.get(f"/t/{hd.slug}/admin/people/{hd.agent.id}").get_data(
        as_text=True)
    refused = admin.post(f"/t/{hd.slug}/admin/people/{hd.admin.id}/password", data={"password": "taken over 123"})
    assert refused.status_code == 403 and "Change your own password from your name" in refused.get_data(as_text=True)
    assert admin.get(f"/t/{hd.slug}/admin").status_code == 200  # still signed in: nothing changed
    fresh = app.test_client()
    assert fresh.post(f"/t/{hd.slug}/login", data={"email": hd.admin.email, "password": "taken over 123"}
                      ).status_code != 302
    assert fresh.post(f"/t/{hd.slug}/login", data={"email": hd.admin.email, "password": hd.admin.password}
                      ).status_code == 302


def test_the_audit_log_names_what_it_can_and_shows_only_what_changed(help_desk, admin):
    hd = help_desk
    ticket = hd.ticket_for(hd.requester, title="Toner everywhere")
    hd.tenant.api.patch(f"/api/v1/tickets/{ticket['id']}", json={"assignee_id": hd.agent.id,
                                                                 "team_id": hd.team["id"]})
    hd.tenant.api.patch(f"/api/v1/users/{hd.agent2.id}", json={"name": "Bo B. Agent"})
    base = f"/t/{hd.slug}/admin/audit"
    tickets = page(admin, f"{base}?entity_type=ticket&action=updated")
    assert f'/tickets/{ticket["number"]}" dir="auto">ticket #{ticket["number"]} Toner everywhere</a>' in tickets
    assert "<dt>assignee_id</dt><dd><del>none</del> → <ins>Ada Agent</ins></dd>" in tickets
    assert f"<ins>{hd.team['name']}</ins>" in tickets and hd.agent.id not in tickets.split("<tbody>")[1]
    users = page(admin, f"{base}?entity_type=user&action=updated")
    row = users.split("<tbody>")[1].split("</tr>")[0]
    assert "user Bo B. Agent" in row and "<dt>name</dt><dd><del>Bo Agent</del> → <ins>Bo B. Agent</ins></dd>" in row
    assert re.findall(r"<dt>([^<]+)</dt>", row) == ["name"]  # unchanged fields are not listed


def test_a_form_that_changes_some_fields_leaves_a_box_it_does_not_show_as_it_is(help_desk, admin, app):
    """A browser leaves an unticked box out, so every box left out read as unticked: a script posting only
    the capacity to a person's form marked them away too. The pages' boxes now say they were shown."""
    hd = help_desk
    url = f"/t/{hd.slug}/admin/people/{hd.agent.id}"
    shown = page(admin, url)
    assert '<input type="hidden" name="shown" value="available">' in shown
    assert admin.post(url, data={"capacity": "3"}).status_code == 302
    api = hd.tenant.api
    after = api.get(f"/api/v1/users/{hd.agent.id}").get_json()
    assert (after["capacity"], after["available"]) == (3, True)
    assert admin.post(url, data={"capacity": "3", "shown": "available"}).status_code == 302  # the box, unticked
    assert api.get(f"/api/v1/users/{hd.agent.id}").get_json()["available"] is False



def test_a_rule_or_webhook_form_posting_some_fields_leaves_the_others_as_they_are(help_desk, admin):
    """The rule form rebuilt the conditions from whatever was posted: a script sending only a name emptied
    them, and the rule matched every ticket. The webhook form read a post without events as none chosen."""
    hd = help_desk
    rule = hd.tenant.api.post("/api/v1/assignment-rules", json={
        "name": "Urgent money", "team_id": hd.team["id"], "strategy": "round_robin",
        "conditions": {"priority": ["urgent"], "category": ["billing"]}}).get_json()
    url = f"/t/{hd.slug}/admin/rules/{rule['id']}"
    assert admin.post(url, data={"name": "Urgent billing"}).status_code == 302
    after = hd.tenant.api.get(f"/api/v1/assignment-rules/{rule['id']}").get_json()
    assert (after["name"], after["conditions"]) == ("Urgent billing", {"priority": ["urgent"], "category": ["billing"]})
    assert '<input type="hidden" name="shown" value="conditions">' in page(admin, url)
    hook = hd.tenant.api.post("/api/v1/webhooks", json={"url": "https://hooks.example.com/tms",
                                                        "events": ["ticket.created"]}).get_json()
    url = f"/t/{hd.slug}/admin/webhooks/{hook['id']}"
    assert admin.post(url, data={"description": "Our CRM"}).status_code == 302
    after = hd.tenant.api.get(f"/api/v1/webhooks/{hook['id']}").get_json()
    assert (after["description"], after["events"]) == ("Our CRM", ["ticket.created"])
    assert admin.post(url, data={"description": "Our CRM", "shown": "events"}).status_code == 422  # none ticked
