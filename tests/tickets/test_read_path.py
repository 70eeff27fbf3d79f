"""Ticket reads run without a transaction, and leave none of that on their pooled connection."""

from __future__ import annotations

import psycopg
import sqlalchemy as sa

from app import create_app
from app.extensions import db
from tests.helpers import ApiClient, app_config


def test_reads_give_back_a_connection_that_opens_transactions_again(services, tenant):
    app = create_app(app_config(services, SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 1, "max_overflow": 0}))
    api = ApiClient(app.test_client(), tenant.key)
    created = api.post("/api/v1/tickets", json={"title": "read me"}).get_json()
    with app.app_context():
        engine = db.engine
    modes: list[bool] = []

    def note_mode(conn, cursor, statement, parameters, context, executemany):
        if "tickets" in statement:
            modes.append(conn.connection.dbapi_connection.autocommit)

    sa.event.listen(engine, "before_cursor_execute", note_mode)
    for path in (f"/api/v1/tickets/{created['id']}", f"/api/v1/tickets/by-number/{created['number']}",
                 "/api/v1/tickets?limit=5"):
        assert api.get(path).status_code == 200
    sa.event.remove(engine, "before_cursor_execute", note_mode)
    assert modes == [True, True, True]
    with app.app_context(), db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw.autocommit is False
        conn.execute(sa.text("select 1"))
        assert raw.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    assert api.post("/api/v1/tickets", json={"title": "after reads"}).status_code == 201


def test_a_read_sees_a_change_committed_just_before(tenant):
    created = tenant.api.post("/api/v1/tickets", json={"title": "before"}).get_json()
    assert tenant.api.get(f"/api/v1/tickets/{created['id']}").get_json()["title"] == "before"
    changed = tenant.api.patch(f"/api/v1/tickets/{created['id']}", json={"title": "after"})
    assert changed.status_code == 200
    assert tenant.api.get(f"/api/v1/tickets/{created['id']}").get_json()["title"] == "after"
    listed = tenant.api.get("/api/v1/tickets?limit=5").get_json()["items"]
    assert [t["title"] for t in listed] == ["after"]


def test_a_listed_ticket_reads_exactly_as_the_ticket_itself(tenant):
    agent = tenant.user("agent")
    first = tenant.api.post("/api/v1/tickets", json={"title": "one", "tags": ["b", "a"], "category": "hw",
                                                    "priority": "high"}).get_json()
    assert tenant.api.patch(f"/api/v1/tickets/{first['id']}", json={"assignee_id": agent["id"]}).status_code == 200
    closed = tenant.api.post(f"/api/v1/tickets/{first['id']}/close", json={"resolution": "fixed"})
    assert closed.status_code == 200 and closed.get_json()["closed_at"] is not None
    tenant.api.post("/api/v1/tickets", json={"title": "two"})
    pages, cursor = [], None
    while True:
        body = tenant.api.get("/api/v1/tickets", query_string={"limit": 1, "cursor": cursor} if cursor
                              else {"limit": 1}).get_json()
        pages += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [t["title"] for t in pages] == ["two", "one"]
    for listed in pages:
        assert listed == tenant.api.get(f"/api/v1/tickets/{listed['id']}").get_json()
