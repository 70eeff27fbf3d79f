"""Ticket pages bound their index scans: a filter on the sort's leading column and a cursor are
index conditions, not filters on rows read from the start of the index.

At a million tickets, `priority=urgent&sort=priority` read 900,000 rows to drop them (800 ms), and
a page half a million tickets deep read the half million before it (180 ms); both are now under
a millisecond in Postgres.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import psycopg
import pytest
import sqlalchemy as sa

from app import pagination
from app.tickets import reads
from app.tickets.models import Ticket
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


DAY = timedelta(days=1)
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def dated(tenant, in_tenant):
    """Twelve tickets a day apart, numbered in that order; their activity in another order."""
    made = [tenant.api.post("/api/v1/tickets", json={"title": f"d{n}"}).get_json() for n in range(12)]
    with in_tenant(tenant) as session:
        for n, ticket in enumerate(made):
            session.execute(sa.update(Ticket).where(Ticket.id == uuid.UUID(ticket["id"])).values(
                created_at=START + n * DAY, updated_at=START + ((n * 5) % 12) * DAY + DAY / 2))
        session.commit()
    return [tenant.api.get(f"/api/v1/tickets/{t['id']}").get_json() for t in made]


def _analyzed(tenant, in_tenant, monkeypatch, path: str) -> str:
    """Return the plan Postgres ran for the API's `GET path`, asking for index plans (tiny tables are read whole)."""
    with monkeypatch.context() as patched:
        ran = record_statements(patched)
        assert tenant.api.get(path).status_code == 200
    sql, params = ran[-1]
    with in_tenant(tenant) as session, psycopg.RawCursor(session.connection().connection.dbapi_connection) as cur:
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("SET LOCAL enable_bitmapscan = off")
        return "\n".join(row[0] for row in cur.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}", params))


def _walk(tenant, query: dict) -> list[str]:
    seen, cursor = [], None
    while True:
        paged = {**query, "limit": 2, **({"cursor": cursor} if cursor else {})}
        body = tenant.api.get("/api/v1/tickets?" + urlencode(paged))
        seen += [t["id"] for t in body.get_json()["items"]]
        if not (cursor := body.get_json()["next_cursor"]):
            return seen


def _listed(tenant, in_tenant, query: dict) -> list[str]:
    """Walk the same pages through the pages' list (`listing.list_tickets`, an ORM session)."""
    from app.auth.actor import Actor
    from app.tickets.listing import list_tickets

    seen, cursor, admin = [], None, Actor(user_id=uuid.UUID(tenant.admin_id), role="admin")
    with in_tenant(tenant) as session:
        while True:
            found = list_tickets(session, admin, {**query, "limit": 2, "cursor": cursor}, timeout_ms=5000)
            seen += [str(t.id) for t in found.items]
            if not (cursor := found.next_cursor):
                return seen


@pytest.mark.parametrize("small_set", [pagination.SMALL_SET, 5, 0], ids=["walked", "read and sorted", "counted"])
@pytest.mark.parametrize("sort", ["number", "-number", "updated_at", "-updated_at"])
@pytest.mark.parametrize("within", [(8, None), (None, 4), (7, 10)], ids=["after", "before", "between"])
def test_a_creation_range_gives_the_same_pages_read_by_creation_or_walked_by_the_order(
        tenant, in_tenant, monkeypatch, dated, small_set, sort, within):
    """With five, a walk up by number past eight tickets to the last four reads them by creation instead."""
    monkeypatch.setattr(pagination, "SMALL_SET", small_set)
    monkeypatch.setattr(reads, "_PAGES", {})  # statements built with this bound
    after, before = (None if d is None else START + d * DAY for d in within)
    query = {"sort": sort, **({"created_after": after.isoformat()} if after else {}),
             **({"created_before": before.isoformat()} if before else {})}
    key = sort.lstrip("-")
    expected = [t["id"] for t in sorted(dated, key=lambda t: (t[key], t["id"]), reverse=sort.startswith("-"))
                if (after is None or datetime.fromisoformat(t["created_at"]) >= after)
                and (before is None or datetime.fromisoformat(t["created_at"]) < before)]
    assert len(expected) in (4, 3)
    assert _walk(tenant, query) == expected
    assert _listed(tenant, in_tenant, {**query, "created_after": after, "created_before": before}) == expected


def _ran(plan: str, gate: str) -> str:
    """Return the first line under the branch whose gate `gate` begins (`($n > 5) AND` reads and sorts)."""
    found = re.search(rf"One-Time Filter: \(\(\$\d+ {re.escape(gate)}.*\n\s*->  (.*)", plan)
    assert found, plan
    return found.group(1)


def test_a_range_of_recent_tickets_is_read_by_creation_when_a_walk_would_pass_many_first(tenant, in_tenant,
                                                                                        monkeypatch, dated):
    """At a million tickets, a month's range by number walked 960,000 tickets to drop them (460 ms);
    read by creation and sorted, 50 ms. A walk that passes few tickets first stays, and the range is
    then not counted; one past `SMALL_SET` tickets in the range stays too."""
    path = "/api/v1/tickets?" + urlencode({"sort": "number", "created_after": (START + 8 * DAY).isoformat()})

    def plan(small_set: int) -> str:
        monkeypatch.setattr(pagination, "SMALL_SET", small_set)
        monkeypatch.setattr(reads, "_PAGES", {})
        return _analyzed(tenant, in_tenant, monkeypatch, path)

    read = plan(5)  # eight passed first, four within
    assert _ran(read, "> 5) AND").startswith("Index Scan using ix_tickets_created") and "rows=4" in _ran(read, "> 5")
    assert _ran(read, "<= 5) OR").endswith("(never executed)")

    few = plan(10)  # eight passed first: the walk stays, and the range is not counted
    assert _ran(few, "> 10) AND").endswith("(never executed)") and "rows=4" in _ran(few, "<= 10) OR")
    assert re.search(r"CTE counted_within\n\s*->  Aggregate \(never executed\)", few), few

    wide = plan(3)  # four within: more than three, so the walk stays
    assert _ran(wide, "> 3) AND").endswith("(never executed)") and "rows=4" in _ran(wide, "<= 3) OR")

    # Bounded on both sides, the range is counted at once: a walk that ran out of it would read on
    # through every later ticket, though it passes only two first.
    path = "/api/v1/tickets?" + urlencode({"sort": "number", "created_after": (START + 2 * DAY).isoformat(),
                                           "created_before": (START + 6 * DAY).isoformat()})
    window = plan(5)
    assert "counted_passed" not in window, window
    read = re.search(r"One-Time Filter: \(\$\d+ <= 5\)\n\s*->  (.*)", window)
    assert read and "Index Scan using ix_tickets_created" in read.group(1) and "rows=4" in read.group(1), window

    # A walk that meets the range first is left as it was: nothing counted.
    near = _analyzed(tenant, in_tenant, monkeypatch, "/api/v1/tickets?" + urlencode(
        {"sort": "-number", "created_after": (START + 4 * DAY).isoformat()}))
    assert "counted" not in near and "One-Time Filter" not in near, near
