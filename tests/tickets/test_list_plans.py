"""Ticket pages bound their index scans: a filter on the sort's leading column and a cursor are
index conditions, not filters on rows read from the start of the index.

At a million tickets, `priority=urgent&sort=priority` read 900,000 rows to drop them (800 ms), and
a page half a million tickets deep read the half million before it (180 ms); both are now under
a millisecond in Postgres.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest

from tests.helpers import list_plan, record_statements


@pytest.fixture
def tickets(tenant):
    made = [tenant.api.post("/api/v1/tickets", json={"title": f"t{n}", "priority": p}).get_json()
            for n, p in enumerate(["low", "urgent", "high", "urgent", "normal", "high"])]
    return made


@pytest.mark.parametrize("sort", ["priority", "-priority"])
def test_a_priority_filter_bounds_the_walk_of_the_priority_sort(tenant, in_tenant, monkeypatch, tickets, sort):
    query = urlencode({"priority": "high,urgent", "sort": sort})
    page = tenant.api.get(f"/api/v1/tickets?{query}").get_json()["items"]
    ranks = {"high": 2, "urgent": 3}
    assert [t["priority"] for t in page] == sorted((t["priority"] for t in page), key=ranks.get,
                                                   reverse=sort.startswith("-"))
    assert {t["id"] for t in page} == {t["id"] for t in tickets if t["priority"] in ranks}
    plan = list_plan(tenant, in_tenant, monkeypatch, f"/api/v1/tickets?{query}")
    assert re.search(r"Index Cond: \(.*priority_rank = ANY", plan), plan


@pytest.mark.parametrize("sort", ["-created_at", "created_at", "-updated_at", "priority", "-status", "number"])
def test_a_cursor_starts_the_index_scan_where_the_last_page_ended(tenant, in_tenant, monkeypatch, tickets, sort):
    seen, cursor = [], None
    while True:  # pages of two walk every ticket once, in order
        query = {"sort": sort, "limit": 2, **({"cursor": cursor} if cursor else {})}
        body = tenant.api.get("/api/v1/tickets?" + urlencode(query)).get_json()
        seen += [t["id"] for t in body["items"]]
        if not (cursor := body["next_cursor"]):
            break
    whole = [t["id"] for t in tenant.api.get("/api/v1/tickets?" + urlencode({"sort": sort})).get_json()["items"]]
    assert seen == whole and len(seen) == len(tickets)
    first = tenant.api.get("/api/v1/tickets?" + urlencode({"sort": sort, "limit": 2})).get_json()
    plan = list_plan(tenant, in_tenant, monkeypatch,
                     "/api/v1/tickets?" + urlencode({"sort": sort, "limit": 2, "cursor": first["next_cursor"]}))
    assert re.search(r"Index Cond: \((ROW\(.*\) [<>] ROW\(|number [<>])", plan), plan


def test_a_rare_tag_is_read_from_its_index_and_a_common_one_walks_the_sort(tenant, monkeypatch):
    """Postgres guesses a tag it has no statistics for at a share of all tickets, and walked the sort's
    index dropping every ticket without it (0.4 to 1.3 s for a tag on 40 tickets of a million).
    A tag on fewer than `RARE_TAG` tickets is fetched first and sorted; pages come out the same."""
    from app.tickets import rare_tags

    monkeypatch.setattr(rare_tags, "RARE_TAG", 4)
    requester = tenant.key_for(tenant.user("requester"))
    tagged = {"legal": [], "vip": []}
    for n in range(9):
        tags = ["legal"] * (n % 3 == 0) + ["vip"] * (n % 2 == 0)  # legal on 3 tickets, vip on 5
        api = requester if n in (0, 4) else tenant.api
        made = api.post("/api/v1/tickets", json={"title": f"t{n}", "tags": tags, "priority": "high"}).get_json()
        for tag in tags:
            tagged[tag].append(made)
    ran = record_statements(monkeypatch)

    def walk(api, **query) -> list[str]:
        seen, cursor = [], None
        while True:
            page = {**query, "limit": 2, **({"cursor": cursor} if cursor else {})}
            body = api.get("/api/v1/tickets?" + urlencode(page))
            assert body.status_code == 200, body.get_json()
            seen += [t["title"] for t in body.get_json()["items"]]
            if not (cursor := body.get_json()["next_cursor"]):
                return seen

    for tag, rare in (("legal", True), ("vip", False), ("nobody", True)):
        for sort in ("-created_at", "priority", "-updated_at"):
            ran.clear()
            titles = walk(tenant.api, tag=tag, sort=sort, priority="high")
            pages = [sql for sql, _ in ran if "ORDER BY" in sql]
            assert pages and all(("MATERIALIZED" in sql) is rare for sql in pages), (tag, pages)
            counted = [sql for sql, _ in ran if "count(" in sql]  # a rare tag's each time, a common one's once a minute
            assert len(counted) == (len(pages) if rare else 1 if sort == "-created_at" else 0), counted
            everything = tenant.api.get("/api/v1/tickets?" + urlencode({"sort": sort})).get_json()["items"]
            whole = [t["title"] for t in everything]
            assert titles == [t for t in whole if t in {m["title"] for m in tagged.get(tag, [])}]
        mine = walk(requester, tag=tag)
        assert mine == [m["title"] for m in reversed(tagged.get(tag, [])) if m["title"] in ("t0", "t4")]


@pytest.mark.parametrize("sort", ["status", "-status"])
def test_an_assignees_tickets_by_status_read_their_own_index(tenant, in_tenant, monkeypatch, tickets, sort):
    """Unassigned `new` tickets come first in the status index; an agent's list walked past them all."""
    agent = tenant.user("agent")
    for ticket, status in zip(tickets[:4], ["open", "pending", "resolved", "open"], strict=True):
        changed = tenant.api.patch(f"/api/v1/tickets/{ticket['id']}",
                                   json={"assignee_id": agent["id"], "status": status})
        assert changed.status_code == 200, changed.get_json()
    query = urlencode({"assignee_id": agent["id"], "sort": sort})
    page = tenant.api.get(f"/api/v1/tickets?{query}").get_json()["items"]
    order = ["open", "open", "pending", "resolved"]
    assert [t["status"] for t in page] == (order[::-1] if sort.startswith("-") else order)
    plan = list_plan(tenant, in_tenant, monkeypatch, f"/api/v1/tickets?{query}")
    assert "ix_tickets_assignee_status" in plan, plan
