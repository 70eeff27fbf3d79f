"""Hostile values in every slot of every documented operation get a 4xx in the error shape and change nothing.

The operations come from the served OpenAPI document, so a new operation is swept the day it is
documented (and must get a valid baseline below, or this test fails). Each path, query and body
slot (one level into objects and lists too) is given each value of a corpus of its kind:
lone surrogates, NUL and other control characters, deep nesting, huge and very negative numbers,
NaN and Infinity, oversized strings and type confusion. Socket frames get the same treatment.
Afterwards every table of both tenants, and the registry, is byte for byte what it was.
"""

from __future__ import annotations

import copy
import json
import uuid

import pytest
import sqlalchemy as sa
import websocket

from app.extensions import db
from tenants import schema_for
from tests.helpers import new_ticket, post_message, upload_file

DEEP_LIST = "[" * 1000 + '"x"' + "]" * 1000
DEEP_DICT = '{"a": ' * 100 + '"x"' + "}" * 100

# Raw JSON text for a value, so escapes Python's json.dumps would not write reach the server as sent.
SURROGATES = ['"\\ud800"', '"a\\udfffb"', '"\\ud83d"']
NUMBERS = ["NaN", "Infinity", "-Infinity", "1" + "0" * 400, str(2**64), str(-(2**63) - 1), "-1" + "0" * 30,
           "1e999", "9" * 5000]
TEXT = [json.dumps(v) for v in ("a\x00b", "\x00", "a\x1bb", "\x07bell", "tab\x0bvt", "\x7f", "c1\x85")]
CONFUSION = [json.dumps(v) for v in ({}, [], {"$gt": ""}, True, 1.5, [None], {"a": [1]})]
STRING_SLOT = SURROGATES + TEXT + CONFUSION + ["12345", DEEP_LIST, DEEP_DICT]
INTEGER_SLOT = NUMBERS + SURROGATES + TEXT + CONFUSION + ['"12"', '"abc"', DEEP_LIST]
ID_SLOT = SURROGATES + TEXT + CONFUSION + ['"not-a-uuid"', '"00000000-0000-0000-0000-00000000000g"', "123"]
OTHER_SLOT = SURROGATES + TEXT + ['"maybe"', "5", DEEP_LIST, '{"a": "\\ud800"}']
OVERSIZED = '"' + "x" * (2 * 1024 * 1024) + '"'

PATH_VALUES = ["%00", "%ED%A0%80", "%1B", "..%2F..%2Fetc%2Fpasswd", "-1", "1" + "0" * 40, "1e5", "%0A", "null",
               "%7B%7D", "' or 1=1 --", "x" * 300]
QUERY_TEXT = ["%00", "a%00b", "%1B", "%7F", "%C2%85", "%ED%A0%80", "%FF%FE", "%C0%AF", "x" * 5000]
QUERY_NUMBERS = [*QUERY_TEXT, "-1", "-" + "9" * 30, "9" * 400, "NaN", "Infinity", "1.5", "%7B%7D", "[]", "1e3"]
QUERY_IDS = [*QUERY_TEXT, "not-a-uuid", "-1", "%7B%7D", "[]", "00000000-0000-0000-0000-00000000000g"]


def _query_values(schema: dict) -> list[str]:
    kind, fmt = schema.get("type"), schema.get("format")
    if kind in ("integer", "number"):
        return QUERY_NUMBERS
    if fmt == "uuid":
        return QUERY_IDS
    if kind == "string" and "enum" not in schema and fmt is None:
        return QUERY_TEXT
    return [*QUERY_NUMBERS, "%7B%7D", "[]"]  # enums, timestamps, lists of enums: anything else is wrong


@pytest.fixture
def world(app, tenant, other_tenant, monkeypatch, in_tenant):
    """One of everything in `tenant`, and a ticket in another tenant, to fill path slots with real ids."""
    from app.webhooks.delivery import deliver
    from app.webhooks.models import WebhookDelivery

    # A webhook to a loopback port where nothing listens: its one attempt fails without leaving the machine.
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", True)
    hook = tenant.api.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook",
                                                     "events": ["ticket.created"]}).get_json()
    team = tenant.api.post("/api/v1/teams", json={"name": "Support"}).get_json()
    agent = tenant.user("agent")
    tenant.api.put(f"/api/v1/teams/{team['id']}/members/{agent['id']}")
    rule = tenant.api.post("/api/v1/assignment-rules", json={"name": "all", "team_id": team["id"],
                                                             "strategy": "round_robin"}).get_json()
    key = tenant.api.post("/api/v1/api-keys", json={"name": "spare"}).get_json()
    ticket = new_ticket(tenant.api, "Printer on fire", tags=["hw"])
    message = post_message(tenant.api, ticket["id"], body="first").get_json()
    attachment = upload_file(tenant.api, ticket["id"], b"notes\n", "notes.txt").get_json()
    new_ticket(other_tenant.api, "elsewhere")
    with in_tenant(tenant) as session:
        deliver(session.execute(sa.select(WebhookDelivery.id)).scalar_one())
    attempt = tenant.api.get(f"/api/v1/webhooks/{hook['id']}/deliveries").get_json()["items"][0]
    ids = {"user_id": agent["id"], "team_id": team["id"], "rule_id": rule["id"], "key_id": key["id"],
           "ticket_id": ticket["id"], "message_id": message["id"], "number": str(ticket["number"]),
           "attachment_id": attachment["id"],
           "webhook_id": hook["id"], "delivery_id": attempt["id"]}
    bodies = {
        "POST /api/v1/signup": {"name": "Evil", "slug": f"ev-{uuid.uuid4().hex[:8]}",
                                "admin_email": "e@evil.example", "admin_password": "long password"},
        "POST /api/v1/users": {"email": f"{uuid.uuid4().hex[:8]}@example.com", "name": "New", "role": "agent",
                               "password": "long password", "skills": ["billing"], "capacity": 3,
                               "available": True},
        "PATCH /api/v1/users/{user_id}": {"name": "Renamed", "capacity": 4, "skills": ["x"], "available": False},
        "POST /api/v1/teams": {"name": "Another", "description": "desk"},
        "PATCH /api/v1/teams/{team_id}": {"name": "Renamed", "description": "d"},
        "POST /api/v1/api-keys": {"name": "k", "role": "agent", "user_id": agent["id"]},
        "POST /api/v1/api-keys/{key_id}/rotate": {"grace_seconds": 60},
        "POST /api/v1/tickets": {"title": "t", "description": "d", "priority": "high", "category": "c",
                                 "tags": ["a"], "requester_id": agent["id"]},
        "PATCH /api/v1/tickets/{ticket_id}": {"title": "t2", "priority": "low", "category": "c", "tags": ["b"],
                                              "status": "pending", "assignee_id": agent["id"],
                                              "team_id": team["id"]},
        "POST /api/v1/tickets/{ticket_id}/close": {"resolution": "done"},
        "POST /api/v1/tickets/{ticket_id}/reopen": {},
        "POST /api/v1/tickets/{ticket_id}/messages": {"body": "hello", "parent_id": message["id"],
                                                      "internal": True},
        "PATCH /api/v1/tickets/{ticket_id}/messages/{message_id}": {"body": "edited"},
        "POST /api/v1/assignment-rules": {"name": "r", "position": 1, "team_id": team["id"], "strategy": "skills",
                                          "required_skills": ["billing"], "enabled": True,
                                          "conditions": {"priority": ["high"], "category": ["c"],
                                                         "tags_any": ["a"], "keywords_any": ["k"]}},
        "POST /api/v1/assignment-rules/dry-run": {"ticket": {"title": "t", "description": "d", "priority": "high",
                                                             "category": "c", "tags": ["a"]},
                                                  "rule_id": rule["id"]},
        "PATCH /api/v1/assignment-rules/{rule_id}": {"name": "r2", "position": 2, "enabled": False,
                                                     "conditions": {"priority": ["low"]}},
        "PATCH /api/v1/media/settings": {"allowed_types": ["image/png", "text/plain"], "max_size": 1000},
        "POST /api/v1/webhooks": {"url": "http://127.0.0.1:9/other", "events": ["ticket.created", "message.created"],
                                  "secret": "a-long-enough-secret", "include_internal": True, "description": "d"},
        "PATCH /api/v1/webhooks/{webhook_id}": {"url": "http://127.0.0.1:9/moved", "events": ["ticket.closed"],
                                                "include_internal": False, "description": "d", "enabled": True},
        "POST /api/v1/webhooks/{webhook_id}/rotate-secret": {"secret": "another-long-secret",
                                                             "grace_period_seconds": 60},
    }
    return tenant, ids, bodies


def _operations(client) -> list[tuple[str, str, dict]]:
    spec = client.get("/api/v1/openapi.json").get_json()
    ops = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete") and not path.endswith("/stream"):
                ops.append((method.upper(), path, op))
    return ops, spec["components"]["schemas"]


def _schema(spec_schemas: dict, ref_or_schema: dict) -> dict:
    ref = ref_or_schema.get("$ref")
    return spec_schemas[ref.rsplit("/", 1)[1]] if ref else ref_or_schema


def _slot_values(prop: dict) -> list[str]:
    kind, fmt = prop.get("type"), prop.get("format")
    if kind == "string" and fmt == "uuid":
        return ID_SLOT
    if kind == "string":
        return STRING_SLOT
    if kind in ("integer", "number"):
        return INTEGER_SLOT
    return OTHER_SLOT


def _body_variants(body: dict, schema: dict, schemas: dict) -> list[tuple[str, str]]:
    """Yield (slot name, raw JSON body) with one slot of `body` replaced by each hostile value."""
    variants = [("<body>", raw) for raw in (*SURROGATES, DEEP_LIST, DEEP_DICT, "[]",
                                           '"text"', "NaN", OVERSIZED, '{"a": 1,}', "\xff")]
    marker = "\u0000MARK\u0000"
    for name, prop in schema.get("properties", {}).items():
        if prop.get("readOnly"):
            continue
        targets = [((name,), prop)]
        if prop.get("type") == "array" and "items" in prop:
            targets.append(((name, 0), _schema(schemas, prop["items"])))
        nested = _schema(schemas, prop) if "$ref" in prop else None
        if nested and nested.get("type", "object") == "object":
            for sub, sub_prop in nested.get("properties", {}).items():
                targets.append(((name, sub), sub_prop))
                if sub_prop.get("type") == "array":
                    targets.append(((name, sub, 0), _schema(schemas, sub_prop.get("items", {}))))
        for slot, slot_schema in targets:
            values = _slot_values(slot_schema) + ([OVERSIZED] if slot_schema.get("type") == "string" else [])
            for raw in values:
                varied = copy.deepcopy(body)
                holder = varied
                for step in slot[:-1]:
                    holder = holder.setdefault(step, {} if isinstance(step, str) else [])
                if isinstance(holder, list) and not holder:
                    holder.append(None)
                holder[slot[-1]] = marker
                variants.append((".".join(map(str, slot)), json.dumps(varied).replace(json.dumps(marker), raw)))
    return variants


def _snapshot(app, slugs: list[str]) -> dict[str, str]:
    """Return a checksum of every table of the tenants and of the registry."""
    with app.app_context():
        tables = [("public", "tenants"), ("public", "api_keys")]
        for slug in slugs:
            schema = schema_for(slug)
            tables += [(schema, t) for t in db.session.execute(sa.text(
                "select table_name from information_schema.tables where table_schema = :s and "
                "table_type = 'BASE TABLE'"), {"s": schema}).scalars()]
        sums = {}
        for schema, table in tables:
            sums[f"{schema}.{table}"] = db.session.execute(sa.text(
                f'select count(*) || \':\' || coalesce(md5(string_agg(t::text, \'|\' order by t::text)), \'\') '
                f'from "{schema}"."{table}" t')).scalar()
        db.session.rollback()
    return sums


def _is_refusal(resp) -> bool:
    if not 400 <= resp.status_code < 500:
        return False
    body = resp.get_json(silent=True)
    return (isinstance(body, dict) and body.get("code") == resp.status_code
            and isinstance(body.get("status"), str) and isinstance(body.get("message"), str))


def test_every_slot_of_every_operation_refuses_hostile_values(app, world, other_tenant):
    tenant, ids, bodies = world
    client = tenant.api
    operations, schemas = _operations(app.test_client())
    before = _snapshot(app, [tenant.slug, other_tenant.slug])
    failures = []
    for method, path, op in operations:
        name = f"{method} {path}"
        params = op.get("parameters", [])
        has_body = "requestBody" in op
        if has_body and "application/json" not in op["requestBody"]["content"]:
            # A file upload (multipart): every hostile JSON body is the wrong kind of body.
            has_body = False
            params = [*params, *({"in": "raw body", "name": raw} for raw in (*SURROGATES, "[]", '"text"', DEEP_LIST))]
        if has_body:
            assert name in bodies, f"{name} is documented but has no valid baseline body in this test"
        real_path = path
        for key, value in ids.items():
            real_path = real_path.replace("{" + key + "}", value)
        assert "{" not in real_path, f"{name}: no real id for a path slot"
        body_raw = json.dumps(bodies[name]) if has_body else None
        requests = []
        for param in params:
            if param["in"] == "path":
                for value in PATH_VALUES:
                    requests.append((f"path {param['name']}", path.replace("{" + param["name"] + "}", value), None))
            elif param["in"] == "query":
                for value in _query_values(param.get("schema", {})):
                    requests.append((f"query {param['name']}", f"{real_path}?{param['name']}={value}", None))
            elif param["in"] == "raw body":
                requests.append(("body", real_path, param["name"]))
        if has_body:
            schema = _schema(schemas, op["requestBody"]["content"]["application/json"]["schema"])
            requests += [(f"body {slot}", real_path, raw) for slot, raw in
                         _body_variants(bodies[name], schema, schemas)]
        for slot, url, raw in requests:
            for key, value in ids.items():
                url = url.replace("{" + key + "}", value)
            sent = raw if raw is not None else body_raw
            headers = {"Content-Type": "application/json"} if sent is not None else {}
            resp = client.client.open(url, method=method, data=sent.encode("utf-8", "surrogatepass")
                                      if sent is not None else None,
                                      headers={"Authorization": f"Bearer {client.key}", **headers})
            if not _is_refusal(resp):
                failures.append((name, slot, (raw or url)[:120], resp.status_code, resp.get_data()[:200]))
    assert not failures, "\n".join(map(str, failures[:40])) + f"\n({len(failures)} in all)"
    assert _snapshot(app, [tenant.slug, other_tenant.slug]) == before


def test_hostile_socket_frames_get_error_events_and_change_nothing(app, live_server, tenant, other_tenant):
    ticket = new_ticket(tenant.api)
    before = _snapshot(app, [tenant.slug, other_tenant.slug])
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{live_server.port}/api/v1/tickets/{ticket['id']}/stream",
        header=[f"Authorization: Bearer {tenant.key}"], timeout=10)
    frames = ["{not json", "[]", '"text"', "null", "NaN", DEEP_LIST, DEEP_DICT,
              '{"type": "\\ud800"}', '{"type": "message", "body": "\\ud800"}', '{"type": "message", "body": 5}']
    id_lists = [f"[{raw}]" for raw in ID_SLOT]
    for slot, values in (("type", STRING_SLOT), ("body", STRING_SLOT), ("parent_id", ID_SLOT),
                         ("internal", OTHER_SLOT), ("attachment_ids", OTHER_SLOT + id_lists)):
        for raw in values:
            base = {"type": "message", "body": "hi"}
            frames.append(json.dumps({**base, slot: "\u0000MARK"}).replace('"\\u0000MARK"', raw))
    frames.append(json.dumps({"type": "typing", "extra": 1}))
    for frame in frames:
        ws.send(frame)
        event = json.loads(ws.recv())
        assert event["type"] == "error" and 400 <= event["code"] < 500, (frame[:80], event)
    ws.send_binary(b"\x00\xff")
    assert json.loads(ws.recv())["code"] == 400
    post_message(tenant.api, ticket["id"], body="still open")
    assert json.loads(ws.recv())["message"]["body"] == "still open"
    ws.close()
    after = _snapshot(app, [tenant.slug, other_tenant.slug])
    changed = {k for k in after if after[k] != before[k]}
    assert changed <= {f"{schema_for(tenant.slug)}.{table}" for table in
                       ("messages", "tickets", "idempotency_keys", "events")}  # the one good message's event
    messages = tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]
    assert [m["body"] for m in messages] == ["still open"]
