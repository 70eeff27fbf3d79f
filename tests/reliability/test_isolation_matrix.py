"""The isolation matrix, generated from the app's URL map and job registry, not listed by hand.

Every route that takes an id is called by tenant B (its admin key; its signed-in session for
pages) with tenant A's ids, by every method it has: each answers 404 and A's data is byte for byte
what it was. Every list, search, export, feed and report B can read holds none of A's ids or
texts. A tenant named in a header, the query or the body switches nothing. A new route with a
parameter this test has no id for fails it, so a route is covered the day it is added.
"""

from __future__ import annotations

import io
import re

import pytest
import sqlalchemy as sa

from app.auth.key_cache import GENERATION
from app.extensions import db
from app.schemas import UUID_PATTERN
from app.worker import run_outbox_row
from tenants import current_tenant_or_none, schema_for
from tests.helpers import Desk, new_ticket, post_message

MARKER = "isolation-marker-7f3a"
# Valid bodies, so that what answers is the lookup of A's id, not the validation of the body.
BODIES = {
    ("PATCH", "api_people.UserById"): {"name": "renamed"},
    ("PATCH", "api_people.TeamById"): {"name": "renamed"},
    ("PATCH", "api_tickets.TicketById"): {"priority": "low"},
    ("POST", "api_tickets.TicketClose"): {},
    ("POST", "api_conversation.TicketMessages"): {"body": "from B"},
    ("PATCH", "api_conversation.TicketMessageById"): {"body": "from B"},
    ("PATCH", "api_assignment.RuleById"): {"name": "renamed"},
    ("POST", "api_api_keys.ApiKeyRotation"): {},
    ("PATCH", "api_webhooks.WebhookById"): {"enabled": False},
    ("POST", "api_webhooks.WebhookSecret"): {},
    ("POST", "api_webhooks.WebhookRedeliver"): {},
}
# Routes whose parameters are not ids of tenant data.
NOT_TENANT_DATA = {"static", "swagger_ui_asset"}


@pytest.fixture
def tenant_a(make_tenant, run_jobs):
    """Tenant A with one of everything that has an id."""
    a = make_tenant()
    agent = a.user("agent", name=MARKER)
    team = a.api.post("/api/v1/teams", json={"name": f"{MARKER} team"}).get_json()
    a.api.put(f"/api/v1/teams/{team['id']}/members/{agent['id']}")
    rule = a.api.post("/api/v1/assignment-rules", json={"name": f"{MARKER} rule", "team_id": team["id"],
                                                       "strategy": "round_robin"}).get_json()
    key = a.api.post("/api/v1/api-keys", json={"name": f"{MARKER} key"}).get_json()
    hook = a.api.post("/api/v1/webhooks", json={"url": "https://hooks.example.com/a",
                                                "events": ["ticket.created"]})
    assert hook.status_code == 201, hook.get_json()
    hook = hook.get_json()
    ticket = new_ticket(a.api, f"{MARKER} ticket", description=MARKER)
    message = post_message(a.api, ticket["id"], body=f"{MARKER} message").get_json()
    upload = a.api.post(f"/api/v1/tickets/{ticket['id']}/attachments",
                        data={"file": (io.BytesIO(MARKER.encode()), "a.txt", "text/plain")},
                        content_type="multipart/form-data").get_json()
    run_jobs("webhooks")  # one attempt at the delivery (to a name that does not resolve here)
    deliveries = a.api.get(f"/api/v1/webhooks/{hook['id']}/deliveries").get_json()["items"]
    ids = {"user_id": agent["id"], "team_id": team["id"], "rule_id": rule["id"], "key_id": key["id"],
           "webhook_id": hook["id"], "delivery_id": deliveries[0]["id"], "ticket_id": ticket["id"],
           "message_id": message["id"], "attachment_id": upload["id"], "number": str(ticket["number"])}
    return a, ids


def _snapshot(app, slug: str) -> dict[str, str]:
    schema = schema_for(slug)
    with app.app_context():
        tables = db.session.execute(sa.text(
            "select table_name from information_schema.tables where table_schema = :s and table_type = 'BASE TABLE'"),
            {"s": schema}).scalars().all()
        sums = {t: db.session.execute(sa.text(
            f"select count(*) || ':' || coalesce(md5(string_agg(t::text, '|' order by t::text)), '') "
            f'from "{schema}"."{t}" t')).scalar() for t in tables}
        db.session.rollback()
    return sums


def _routes_with_ids(app) -> list[tuple[str, str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.arguments or rule.endpoint in NOT_TENANT_DATA:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, rule.rule, rule.endpoint))
    return routes


def _fill(rule: str, ids: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1).split(":")[-1]
        assert name in ids, f"no id of tenant A for <{name}> in {rule}: give this test one"
        return ids[name]

    return re.sub(r"<([^>]+)>", value, rule)


def test_every_route_with_an_id_answers_404_to_another_tenant_and_changes_nothing(app, tenant_a, other_tenant):
    a, ids = tenant_a
    before = _snapshot(app, a.slug)
    page_client = app.test_client()
    assert page_client.post(f"/t/{other_tenant.slug}/login", data={
        "email": other_tenant.admin_email, "password": other_tenant.admin_password}).status_code == 302
    checked = []
    for method, rule, endpoint in _routes_with_ids(app):
        path = _fill(rule, ids)
        if endpoint == "stream.ticket_stream":
            continue  # a socket: tests/conversation/test_stream.py refuses B's key and tokens before the handshake
        if rule.startswith("/api/"):
            body = BODIES.get((method, endpoint))
            resp = other_tenant.api.client.open(path, method=method, json=body, headers={
                "Authorization": f"Bearer {other_tenant.key}"})
        else:  # a page: B's signed-in admin, under B's own path
            resp = page_client.open(f"/t/{other_tenant.slug}{path}", method=method, data={})
        assert resp.status_code == 404, (method, rule, resp.status_code, resp.data[:200])
        checked.append((method, rule))
    assert len(checked) >= 30
    assert _snapshot(app, a.slug) == before


def _a_texts(ids: dict[str, str]) -> list[str]:
    return [MARKER, *(v for k, v in ids.items() if k != "number")]


def test_no_list_search_export_feed_or_report_of_another_tenant_holds_a_row_of_a(app, tenant_a, other_tenant):
    _, ids = tenant_a
    new_ticket(other_tenant.api, "B's own")
    read = 0
    for rule in app.url_map.iter_rules():
        if (rule.arguments or "GET" not in rule.methods or not rule.rule.startswith("/api/v1/")
                or rule.rule.startswith("/api/v1/docs") or rule.rule.endswith("openapi.json")):
            continue
        for query in ("", f"?q={MARKER}", "?limit=200", "?format=json"):
            resp = other_tenant.api.get(rule.rule + query)
            if resp.status_code != 200:
                assert resp.status_code in (404, 422), (rule.rule, query, resp.status_code)
                continue
            text = resp.get_data(as_text=True)
            leaked = [t for t in _a_texts(ids) if t in text]
            assert not leaked, (rule.rule, query, leaked)
            read += 1
    assert read >= 10


def test_a_tenant_named_in_a_header_query_or_body_switches_nothing(app, tenant_a, other_tenant):
    a, ids = tenant_a
    with app.app_context():
        a_id = str(db.session.execute(sa.text("select id from public.tenants where slug = :s"),
                                      {"s": a.slug}).scalar_one())
        db.session.rollback()
    hints = {"X-Tenant": a.slug, "X-Tenant-Id": a_id, "X-Tenant-Slug": a.slug, "Host": f"{a.slug}.localhost"}
    for query in (f"?tenant={a.slug}", f"?tenant_id={a_id}"):
        listed = other_tenant.api.get(f"/api/v1/tickets{query}", headers=hints)
        assert listed.status_code == 422  # an unknown parameter is refused, never read
    listed = other_tenant.api.get("/api/v1/tickets", headers=hints)
    assert listed.status_code == 200 and MARKER not in listed.get_data(as_text=True)
    assert other_tenant.api.get(f"/api/v1/tickets/{ids['ticket_id']}", headers=hints).status_code == 404
    created = other_tenant.api.post("/api/v1/tickets", json={"title": "mine", "tenant": a.slug}, headers=hints)
    assert created.status_code == 422  # an unknown field is refused, never read
    assert other_tenant.api.get(f"/t/{a.slug}/api/v1/tickets").status_code == 404  # a path naming A


def test_jobs_run_in_their_own_tenant_and_never_without_one(app, make_tenant, run_jobs):
    desks = [Desk(make_tenant()) for _ in range(2)]
    tickets = []
    for desk in desks:
        agent = desk.agents(1)[0]
        desk.rule(desk.team("Support", [agent]))
        tickets.append((desk, agent, desk.ticket("assign me")))
    for slug in ("", None, "no such tenant", "a\nb"):
        with pytest.raises(ValueError, match="tenant"):
            run_outbox_row(slug, 1)
    run_jobs()  # both tenants' jobs, one after the other, in this one process
    for desk, agent, ticket in tickets:
        assert desk.get(ticket)["assignee_id"] == agent["id"]
    with app.app_context():
        assert current_tenant_or_none() is None  # nothing carried over after the jobs


def test_redis_keys_carry_their_tenant(app, services, tenant_a, other_tenant):
    import redis

    other_tenant.api.get("/api/v1/reports/overview")
    with app.app_context():
        tenant_ids = {str(i) for i in db.session.execute(sa.text("select id from public.tenants")).scalars()}
        slugs = set(db.session.execute(sa.text("select slug from public.tenants")).scalars())
        db.session.rollback()
    # Keys that cannot name a tenant, and why.
    global_keys = (
        "rq:",  # RQ's own queues and registries; each job's arguments name its tenant
        "tms:stream-token:",  # looked up by the token alone; the grant inside names the tenant
        "tms:login:fail:address:",  # per client address across tenants, by design
        "tms:signup:",  # before there is a tenant
    )
    client = redis.Redis.from_url(services.redis_url)
    # `tenants drop` deletes a tenant's keys; a generation names a tenant all the same.
    named = {key.decode().removeprefix(GENERATION) for key in client.scan_iter(match=GENERATION + "*")}
    assert all(re.fullmatch(UUID_PATTERN, i, re.ASCII) for i in named), named  # a malformed one would pass any key
    tenant_ids |= named
    unnamed = []
    for key in client.scan_iter(count=1000):
        name = key.decode()
        if name.startswith(global_keys):
            continue
        if not any(t in name for t in tenant_ids) and not any(f":{s}:" in name or name.endswith(f":{s}")
                                                                for s in slugs):
            unnamed.append(name)
    assert not unnamed, unnamed[:20]
