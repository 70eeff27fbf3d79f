"""Cursors are signed and typed: forged, altered or foreign cursors are a 422 on every list, never a 500."""

from __future__ import annotations

import base64
import json
import zlib

import pytest
from itsdangerous import Serializer, URLSafeSerializer
from itsdangerous.encoding import base64_encode

from app import pagination
from tests.helpers import new_ticket, post_message

LISTS = ["/api/v1/users", "/api/v1/teams", "/api/v1/assignment-rules", "/api/v1/api-keys", "/api/v1/tickets",
         "/api/v1/tickets?sort=priority", "/api/v1/tickets?q=printer", "/api/v1/tickets?q=printer&sort=number",
         "/api/v1/events", "/api/v1/audit-events"]


def _b64(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


FORGED = [_b64(v) for v in ([], [None], [1, 2, 3], ["x", "y"], [{"a": 1}, []], [True, False], [1e308, -1],
                            ["2026-01-01T00:00:00", "not-a-uuid"], "text", {"a": 1}, None)]
FORGED += [".", "..", "a.b", "r.", "r.x", "w.abc.def", "s." + _b64([1, 2]), "%00", "\u00e9", "x" * 999]


@pytest.fixture
def filled(tenant):
    """A tenant with two of everything, so each list has a second page at limit=1."""
    team = tenant.api.post("/api/v1/teams", json={"name": "first"}).get_json()
    tenant.api.post("/api/v1/teams", json={"name": "second"})
    for i in range(2):
        tenant.user("agent")
        tenant.api.post("/api/v1/api-keys", json={"name": f"key {i}"})
        tenant.api.post("/api/v1/assignment-rules", json={"name": f"r{i}", "team_id": team["id"],
                                                         "strategy": "least_loaded"})
    tickets = [new_ticket(tenant.api, f"printer {i}") for i in range(3)]
    for _ in range(2):
        post_message(tenant.api, tickets[0]["id"])
    return tenant, tickets[0]


def _page(api, path: str, cursor: str | None = None):
    joiner = "&" if "?" in path else "?"
    query = f"{joiner}limit=1" + ("" if cursor is None else f"&cursor={cursor}")
    return api.get(path + query)


def _next_cursor(api, path: str) -> str:
    body = _page(api, path).get_json()
    assert body["next_cursor"], (path, body)
    return body["next_cursor"]


def _refused(resp) -> bool:
    body = resp.get_json()
    return resp.status_code == 422 and body["code"] == 422 and list(body["errors"]) == ["cursor"]


def test_forged_cursors_are_422_on_every_list(filled):
    tenant, ticket = filled
    paths = [*LISTS, f"/api/v1/tickets/{ticket['id']}/messages"]
    for path in paths:
        for cursor in FORGED:
            resp = _page(tenant.api, path, cursor)
            assert _refused(resp), (path, cursor, resp.status_code, resp.get_json())


def test_a_real_cursor_altered_by_one_character_is_422(filled):
    tenant, _ = filled
    for path in LISTS:
        cursor = _next_cursor(tenant.api, path)
        assert _page(tenant.api, path, cursor).status_code == 200
        # Not the last character: its low bits are padding in base64, so changing it may change nothing.
        for at in (len(cursor) // 2, len(cursor) - 5):
            flipped = cursor[:at] + ("A" if cursor[at] != "A" else "B") + cursor[at + 1:]
            assert _refused(_page(tenant.api, path, flipped)), (path, at)


def test_a_cursor_is_good_only_for_its_own_list_and_order(filled):
    tenant, _ = filled
    cursors = {path: _next_cursor(tenant.api, path) for path in LISTS}
    for made_for, cursor in cursors.items():
        for used_on in LISTS:
            if used_on != made_for:
                assert _refused(_page(tenant.api, used_on, cursor)), (made_for, used_on)


def test_a_cursor_from_another_tenant_is_422(filled, make_tenant):
    tenant, _ = filled
    stranger = make_tenant()
    for _ in range(2):
        stranger.user("agent")
    cursor = _next_cursor(stranger.api, "/api/v1/users")
    assert _refused(_page(tenant.api, "/api/v1/users", cursor))


class _Compressed(URLSafeSerializer):
    """Cursors as they were signed when zlib made them shorter (itsdangerous marks those with a dot)."""

    def dump_payload(self, obj) -> bytes:
        return b"." + base64_encode(zlib.compress(Serializer.dump_payload(self, obj)))


def test_a_cursor_given_out_compressed_still_pages(filled, monkeypatch):
    """Cursors were once compressed whenever that made them shorter; one given out then still reads."""
    tenant, _ = filled
    monkeypatch.setattr(pagination, "_CursorSerializer", _Compressed)
    pagination._serializer.cache_clear()
    before = _next_cursor(tenant.api, "/api/v1/tickets")
    monkeypatch.undo()
    pagination._serializer.cache_clear()
    now = _next_cursor(tenant.api, "/api/v1/tickets")
    assert before.startswith(".") and not now.startswith(".")  # compressed, then not
    pages = [_page(tenant.api, "/api/v1/tickets", cursor).get_json() for cursor in (before, now)]
    assert pages[0] == pages[1] and pages[0]["items"]


def test_a_list_sorted_by_the_longest_names_still_pages(tenant):
    """Team names sort their list, so a cursor holds one: 200 four-byte characters passed the old cap."""
    for end in "abc":
        assert tenant.api.post("/api/v1/teams", json={"name": "\U0001f3a7" * 199 + end}).status_code == 201
    names, cursor = [], None
    while True:
        page = _page(tenant.api, "/api/v1/teams", cursor)
        assert page.status_code == 200, page.get_json()
        names += [t["name"][-1] for t in page.get_json()["items"]]
        cursor = page.get_json()["next_cursor"]
        if not cursor:
            break
        assert len(cursor) > 1000
    assert names == ["a", "b", "c"]
