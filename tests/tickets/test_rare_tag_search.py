"""A search (`q`) within a rare tag, and the pages' lists filtered by one, read the tag's few tickets
from its index: at a million tickets `q=printer&tag=<on 40 tickets>` walked the whole table (about
a second). Pages come out as the same search gives over a common tag, in every sort and walked by
cursor, and a requester still finds only their own tickets.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from app.auth.actor import Actor
from app.extensions import db
from app.tickets import listing, rare_tags
from app.tickets.common_values import CommonValues
from app.tickets.models import Ticket

SORTS = ["-created_at", "priority", "-updated_at", "number", "relevance"]


@pytest.fixture
def desk(tenant):
    """Nine tickets: `printer` in four titles, `screenshot` in one message each on three; `legal` on
    three, `vip` on five, two of them a requester's own."""
    requester = tenant.user("requester")
    key = tenant.key_for(requester)
    made = []
    for n in range(9):
        tags = ["legal"] * (n % 3 == 0) + ["vip"] * (n % 2 == 0)
        api = key if n in (0, 4) else tenant.api
        title = f"printer {n}" if n % 2 == 0 or n == 3 else f"monitor {n}"
        ticket = api.post("/api/v1/tickets", json={"title": title, "tags": tags,
                                                  "priority": ["low", "high", "urgent"][n % 3]}).get_json()
        if n in (0, 1, 3):
            posted = api.post(f"/api/v1/tickets/{ticket['id']}/messages", json={"body": "see the screenshot"})
            assert posted.status_code == 201, posted.get_json()
        made.append(ticket)
    return {"api": tenant.api, "requester": key, "requester_id": requester["id"], "tickets": made}


@pytest.fixture
def statements(app):
    """Record the SQL every connection runs (the session's too, which searches use)."""
    ran: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        ran.append(statement)

    sa.event.listen(sa.Engine, "before_cursor_execute", seen)
    yield ran
    sa.event.remove(sa.Engine, "before_cursor_execute", seen)


def walk(api, **query) -> tuple[list[str], str]:
    """Return the titles of every page of two, followed by cursor, and the order the pages said."""
    seen, cursor = [], None
    while True:
        page = {**query, "limit": 2, **({"cursor": cursor} if cursor else {})}
        response = api.get("/api/v1/tickets?" + urlencode(page))
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        seen += [t["title"] for t in body["items"]]
        if not (cursor := body["next_cursor"]):
            return seen, body["order"]


@pytest.mark.parametrize("q", ["printer", "screenshot", "printer OR screenshot"])
def test_a_search_within_a_rare_tag_reads_its_tickets_and_pages_as_over_a_common_one(
        desk, monkeypatch, statements, q):
    monkeypatch.setattr(rare_tags, "RARE_TAG", 4)  # legal (3 tickets) and nobody are rare, vip (5) is not
    tickets = desk["tickets"]
    for tag in ("legal", "vip", "nobody"):
        tagged = {t["title"] for t in tickets if tag in t["tags"]}
        for sort in SORTS:
            statements.clear()
            titles, order = walk(desk["api"], q=q, tag=tag, sort=sort)
            whole, whole_order = walk(desk["api"], q=q, sort=sort)
            assert order == whole_order
            if order == "relevance":  # ranked: the same ranks, ties by id
                assert sorted(titles) == sorted(t for t in whole if t in tagged)
            else:
                assert titles == [t for t in whole if t in tagged], (tag, sort)
            assert len(set(titles)) == len(titles)
            read_from_tag = any("MATERIALIZED" in sql for sql in statements)
            assert read_from_tag is (tag != "vip" and order != "relevance"), (tag, sort, order)
        statements.clear()
        mine, _ = walk(desk["requester"], q=q, tag=tag)
        assert not any("MATERIALIZED" in sql for sql in statements)  # see the next test
        everyone, _ = walk(desk["api"], q=q, tag=tag)
        assert mine == [t for t in everyone if t in {"printer 0", "printer 4"}]


def test_a_requesters_plan_does_not_tell_how_many_others_carry_a_tag(tenant, monkeypatch):
    """The count that finds a tag rare covers the whole organization, and a search's plan travels in its
    cursor: a requester's plan must not change when staff tag tickets the requester cannot see."""
    monkeypatch.setattr(rare_tags, "RARE_TAG", 5)
    requester = tenant.key_for(tenant.user("requester"))
    for n in range(2):
        requester.post("/api/v1/tickets", json={"title": f"zebra {n}", "tags": ["merger"]})

    def plan() -> str:
        query = urlencode({"q": "zebra", "tag": "merger", "limit": 1})
        return requester.get(f"/api/v1/tickets?{query}").get_json()["next_cursor"].partition(".")[0]

    before = plan()
    for n in range(3):  # the tag is common now, on tickets the requester cannot see
        tenant.api.post("/api/v1/tickets", json={"title": f"other {n}", "tags": ["merger"]})
    monkeypatch.setattr(rare_tags, "COMMON", CommonValues())
    assert plan() == before


def test_a_cursor_from_either_plan_serves_the_other(desk, monkeypatch):
    """A tag can turn rare or common between two pages of one walk: its cursor still reads the next page."""
    first = desk["api"].get("/api/v1/tickets?" + urlencode({"q": "printer", "tag": "vip", "limit": 1})).get_json()
    monkeypatch.setattr(rare_tags, "RARE_TAG", 100)
    monkeypatch.setattr(rare_tags, "COMMON", CommonValues())
    rest, _ = walk(desk["api"], q="printer", tag="vip", cursor=first["next_cursor"])
    whole, _ = walk(desk["api"], q="printer", tag="vip")
    assert [first["items"][0]["title"], *rest] == whole


def test_the_pages_lists_filter_by_a_rare_tag_from_its_index(desk, app, in_tenant, tenant, monkeypatch, statements):
    """The dashboard's table and the queues list through the session: a rare tag is read from its index there too."""
    monkeypatch.setattr(rare_tags, "RARE_TAG", 4)
    admin = Actor(uuid.UUID(tenant.admin_id), "admin")
    requester = Actor(uuid.UUID(desk["requester_id"]), "requester")
    cases = [(actor, tag, sort) for actor in (admin, requester) for tag in ("legal", "vip") for sort in SORTS[:4]]
    expected = [walk(desk["api"] if actor is admin else desk["requester"], tag=tag, sort=sort)[0]
                for actor, tag, sort in cases]
    searched_in_scope, _ = walk(desk["api"], q="printer", tag="legal", requester_id=desk["requester_id"])
    assert searched_in_scope == ["printer 0"]  # a queue's scope (here: one requester's) is kept within the tag
    with app.test_request_context(), in_tenant(tenant):
        for (actor, tag, sort), titles in zip(cases, expected, strict=True):
            statements.clear()
            seen, cursor = [], None
            while True:
                args = {"tag": tag, "sort": sort, "limit": 2, **({"cursor": cursor} if cursor else {})}
                found = listing.list_tickets(db.session, actor, args, 5000)
                seen += [t.title for t in found.items]
                if not (cursor := found.next_cursor):
                    break
            assert seen == titles, (actor.role, tag, sort)
            assert any("MATERIALIZED" in sql for sql in statements) is (tag == "legal" and actor is admin)
        statements.clear()
        queue = listing.list_tickets(db.session, admin, {"tag": "legal", "q": "printer", "limit": 50}, 5000,
                                     scope=[Ticket.requester_id == requester.user_id])
        assert [t.title for t in queue.items] == searched_in_scope
        assert any("MATERIALIZED" in sql for sql in statements)
