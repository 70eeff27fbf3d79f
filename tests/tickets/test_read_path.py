"""Ticket reads run without a transaction, and leave none of that on their pooled connection."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import sqlalchemy as sa

from app import create_app
from app.extensions import db
from app.tickets.models import Ticket
from app.tickets.schemas import TicketSchema
from tests.helpers import ApiClient, app_config


def test_reads_give_back_a_connection_that_opens_transactions_again(services, tenant, monkeypatch):
    app = create_app(app_config(services, SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 1, "max_overflow": 0}))
    api = ApiClient(app.test_client(), tenant.key)
    created = api.post("/api/v1/tickets", json={"title": "read me"}).get_json()
    modes: list[bool] = []
    execute = psycopg.Cursor.execute

    def note_mode(cursor, query, *args, **kwargs):
        if "tickets" in str(query):
            modes.append(cursor.connection.autocommit)
        return execute(cursor, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", note_mode)
    for path in (f"/api/v1/tickets/{created['id']}", f"/api/v1/tickets/by-number/{created['number']}",
                 "/api/v1/tickets?limit=5"):
        assert api.get(path).status_code == 200
    monkeypatch.undo()
    assert modes == [True, True, True]
    with app.app_context(), db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw.autocommit is False
        conn.execute(sa.text("select 1"))
        assert raw.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    assert api.post("/api/v1/tickets", json={"title": "after reads"}).status_code == 201


def test_reads_and_writes_of_the_one_statement_paths_make_no_orm_session(services, tenant, monkeypatch):
    """They never use one, so none is made (and closed) on each request just to be asked about."""
    app = create_app(app_config(services))
    api = ApiClient(app.test_client(), tenant.key)
    created = api.post("/api/v1/tickets", json={"title": "read me"}).get_json()
    made: list[object] = []
    with app.app_context():
        registry = db.session.registry
    make = registry.createfunc
    monkeypatch.setattr(registry, "createfunc", lambda **kw: made.append(1) or make(**kw))
    for path in (f"/api/v1/tickets/{created['id']}", "/api/v1/tickets?limit=5"):
        assert api.get(path).status_code == 200
    assert api.post("/api/v1/tickets", json={"title": "again"}).status_code == 201
    assert api.post(f"/api/v1/tickets/{created['id']}/messages", json={"body": "hi"}).status_code == 201
    assert made == []


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


def test_the_read_path_writes_every_field_as_the_declared_schema_does(tenant, in_tenant):
    """GET one, GET by number and every page of the list: each field equals `TicketSchema().dump` of the row."""
    agent = tenant.user("agent")
    team = tenant.api.post("/api/v1/teams", json={"name": "Desk"}).get_json()
    bare = tenant.api.post("/api/v1/tickets", json={"title": "bare"}).get_json()
    full = tenant.api.post("/api/v1/tickets", json={"title": "full", "description": "d é", "category": "c",
                                                    "tags": ["y", "x"], "priority": "urgent"}).get_json()
    tenant.api.patch(f"/api/v1/tickets/{full['id']}", json={"assignee_id": agent["id"], "team_id": team["id"]})
    agent_api = tenant.key_for(agent)
    assert agent_api.post(f"/api/v1/tickets/{full['id']}/messages", json={"body": "on it"}).status_code == 201
    assert tenant.api.post(f"/api/v1/tickets/{full['id']}/close", json={"resolution": "done"}).status_code == 200
    with in_tenant(tenant) as session:  # a time with no microseconds, which isoformat writes shorter
        session.execute(sa.update(Ticket).where(Ticket.id == bare["id"])
                        .values(created_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC)))
        session.commit()
    read = {t["id"]: t for t in tenant.api.get("/api/v1/tickets?limit=1").get_json()["items"]}
    cursor = tenant.api.get("/api/v1/tickets?limit=1").get_json()["next_cursor"]
    read.update({t["id"]: t for t in tenant.api.get("/api/v1/tickets", query_string={
        "limit": 1, "cursor": cursor}).get_json()["items"]})
    declared = TicketSchema()
    with in_tenant(tenant) as session:
        tickets = {str(t.id): t for t in session.query(Ticket)}
        for ticket_id, ticket in tickets.items():
            expected = json.loads(json.dumps(declared.dump(ticket)))
            by_number = tenant.api.get(f"/api/v1/tickets/by-number/{ticket.number}").get_json()
            for body in (read[ticket_id], tenant.api.get(f"/api/v1/tickets/{ticket_id}").get_json(), by_number):
                assert list(body) == list(declared.dump_fields)
                for field in declared.dump_fields:
                    assert body[field] == expected[field], field
    every_field_filled = {f for t in tickets.values() for f, v in declared.dump(t).items() if v is not None}
    assert every_field_filled == set(declared.dump_fields)


def test_a_failed_statement_leaves_the_connections_kept_cursor_serving_the_next(services, tenant, in_tenant):
    """Single-row statements run on a cursor kept with each pooled connection: an error on it
    (here a division by zero) must not spoil the next request's statement on that connection."""
    from tenants import TenantStatement, autocommit_connection

    failing = TenantStatement(sa.select(sa.func.count(Ticket.id) / sa.bindparam("zero", type_=sa.Integer)))
    counting = TenantStatement(sa.select(sa.func.count(Ticket.id)))
    tenant.api.post("/api/v1/tickets", json={"title": "counted"})
    with in_tenant(tenant), autocommit_connection() as conn:
        assert counting.one(conn, {}) == (1,)
        with pytest.raises(psycopg.errors.DivisionByZero):
            failing.one(conn, {"zero": 0})
        assert counting.one(conn, {}, binary=True) == (1,)


def test_a_page_of_rows_is_not_kept_with_the_pooled_connection(services, tenant):
    """A page may be megabytes (200 tickets of 64 KiB descriptions): its rows are freed when the
    request has read them, not kept with the connection for whichever tenant uses it next."""
    app = create_app(app_config(services, SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 1, "max_overflow": 0}))
    api = ApiClient(app.test_client(), tenant.key)
    for n in range(3):
        api.post("/api/v1/tickets", json={"title": f"page {n}", "description": "x" * 1000})
    first = api.get("/api/v1/tickets?limit=1").get_json()["items"][0]
    assert api.get(f"/api/v1/tickets/{first['id']}").status_code == 200  # the kept cursor now holds one row
    assert len(api.get("/api/v1/tickets?limit=3").get_json()["items"]) == 3
    with app.app_context():
        raw = db.engine.pool._pool.queue[0].dbapi_connection
    kept = [value for value in vars(raw).values() if isinstance(value, psycopg.Cursor)]
    assert kept, "the connection's single-row cursor is where the test looks"
    assert all(cursor.pgresult is None or cursor.pgresult.ntuples <= 1 for cursor in kept)


def test_prebuilt_statements_number_their_parameters_as_the_drivers_own_style_names_them(tenant, in_tenant):
    """Prebuilt statements go to Postgres as `$1`, `$2`, ... text (psycopg sends it as it is). Every one,
    and every shape of page, compiled in the engine's own `%(name)s` style must read the same,
    parameter for parameter."""
    import re

    from app.conversation import writes as message_writes
    from app.conversation.services import REQUESTER, STAFF_NOTE, STAFF_REPLY
    from app.idempotency import _EARLIER
    from app.tickets import reads
    from app.tickets import writes as ticket_writes
    from app.tickets.listing import CONDITIONS
    from app.tickets.schemas import SORTS
    from tenants import current_tenant
    from tenants.context import PLACEHOLDER

    kinds = (REQUESTER, STAFF_REPLY, STAFF_NOTE)
    statements = [ticket_writes._statement(False), ticket_writes._statement(True), ticket_writes._CORRECT,
                  _EARLIER, reads._TAGGED_UP_TO, *reads._ONE.values()]
    statements += [message_writes._statement(kind, parent, claimed) for kind in kinds
                   for parent in (False, True) for claimed in (False, True)]
    statements += [message_writes._check(kind, parent) for kind in kinds for parent in (False, True)]
    filters = [(name,) for name in CONDITIONS] + [tuple(CONDITIONS)]
    statements += [reads._page_statement(names, sort, cursor, rare) for names in filters for sort in SORTS
                   for cursor in (False, True) for rare in (False, True) if not rare or "tag" in names]
    with in_tenant(tenant):
        schema = current_tenant().schema
        for statement in statements:
            numbered = statement.sql()
            named = statement.statement.compile(dialect=db.engine.dialect, render_schema_translate=True,
                                                schema_translate_map={PLACEHOLDER: schema}).string
            order = statement._order
            renamed = re.sub(r"\$(\d+)", lambda m, order=order: f"%({order[int(m[1]) - 1]})s", numbered)
            assert renamed == named.replace("%%", "%"), numbered[:200]
            assert {int(n) for n in re.findall(r"\$(\d+)", numbered)} == set(range(1, len(order) + 1))


def test_the_numbering_dialect_knows_what_the_server_told_the_engine(tenant, in_tenant):
    """Compiling depends on what the engine's dialect learnt when it first connected (backslash
    escapes, JSONB subscripting, the server's version): the `$1` dialect must carry all of it."""
    from tenants.statements import OWN_ATTRIBUTES, TenantStatement, _numbered_dialect

    with in_tenant(tenant):
        TenantStatement(sa.select(Ticket.id)).sql()
        numbered, engines = vars(_numbered_dialect()), vars(db.engine.dialect)
    assert numbered["paramstyle"] == "numeric_dollar"

    def settings(found: dict) -> dict:  # flags and versions; the objects each dialect makes for itself aside
        return {name: value for name, value in found.items()
                if name not in OWN_ATTRIBUTES and isinstance(value, bool | int | str | tuple | type(None))}

    learnt = {"server_version_info", "_backslash_escapes", "_supports_jsonb_subscripting", "supports_identity_columns",
              "default_schema_name"}
    assert learnt <= set(settings(numbered))
    both = set(settings(numbered)) & set(settings(engines))  # the engine may memoise more as it runs
    assert {name: numbered[name] for name in both} == {name: engines[name] for name in both}


def test_a_missing_parameter_is_a_driver_error(tenant, in_tenant):
    """As psycopg reported it before the values were numbered, so the app maps it as every driver error."""
    from tenants import TenantStatement, autocommit_connection

    by_title = TenantStatement(sa.select(Ticket.id).where(Ticket.title == sa.bindparam("title")))
    missing = pytest.raises(sa.exc.ProgrammingError, match="query parameter missing: title")
    with in_tenant(tenant), missing, autocommit_connection() as conn:
        by_title.one(conn, {})


def test_durations_are_whole_seconds_cut_toward_zero_on_every_path(tenant, in_tenant):
    """Postgres computes a page's durations (`duration_sql`), Python an ORM ticket's: both cut 2.999999 s
    to 2, and a first reply stamped a little before creation (a clock behind) to 0, as does the export."""
    made = tenant.api.post("/api/v1/tickets", json={"title": "timed"}).get_json()
    created = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    with in_tenant(tenant) as session:
        session.execute(sa.update(Ticket).where(Ticket.id == made["id"]).values(
            created_at=created, first_response_at=created - timedelta(milliseconds=400),
            resolved_at=created + timedelta(seconds=2, microseconds=999_999)))
        session.commit()
        declared = TicketSchema().dump(session.get(Ticket, uuid.UUID(made["id"])))
    assert (declared["first_response_seconds"], declared["resolution_seconds"]) == (0, 2)
    listed = tenant.api.get("/api/v1/tickets").get_json()["items"][0]
    exported = json.loads(tenant.api.get("/api/v1/tickets/export?format=json").data)[0]
    for body in (listed, tenant.api.get(f"/api/v1/tickets/{made['id']}").get_json(), exported):
        assert (body["first_response_seconds"], body["resolution_seconds"]) == (0, 2)


@pytest.mark.parametrize(("created", "ended", "seconds"), [
    (datetime(2025, 3, 9, 6, 30, tzinfo=UTC), datetime(2025, 3, 9, 7, 30, tzinfo=UTC), 3600),  # 01:30 EST, 03:30 EDT
    (datetime(2025, 11, 2, 5, 30, tzinfo=UTC), datetime(2025, 11, 2, 6, 30, 0, 1, tzinfo=UTC), 3600),  # the hour back
    (datetime(1400, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC), 22_089_888_000),
    (datetime(2025, 1, 1, tzinfo=UTC), datetime(2024, 12, 31, 23, 59, 59, 600_000, tzinfo=UTC), 0),  # a clock behind
])
def test_a_duration_is_the_same_on_every_path_whatever_the_connections_time_zone(tenant, in_tenant, created, ended,
                                                                              seconds):
    """Read in a time zone with daylight saving, an ORM ticket's times subtracted by the wall clock (an hour
    off across the change), and 700 years as a float lost a second: `TicketSchema` now counts as Postgres."""
    made = tenant.api.post("/api/v1/tickets", json={"title": "timed"}).get_json()
    with in_tenant(tenant) as session:
        session.execute(sa.update(Ticket).where(Ticket.id == made["id"]).values(created_at=created, resolved_at=ended))
        session.commit()
        session.execute(sa.text("SET LOCAL TIME ZONE 'America/New_York'"))  # this transaction's only
        ticket = session.get(Ticket, uuid.UUID(made["id"]))
        assert ticket.resolved_at.utcoffset() != timedelta(0)
        declared = TicketSchema().dump(ticket)["resolution_seconds"]
    read = tenant.api.get(f"/api/v1/tickets/{made['id']}").get_json()["resolution_seconds"]
    assert declared == read == seconds


def test_a_duration_at_the_end_of_time_counts_and_a_time_without_a_zone_is_refused():
    """Converted to UTC first, a time read in New York within hours of the year 10000 overflowed (a 500 on
    every ORM dump of its ticket); a time without a zone, which Postgres never gives, is no instant."""
    from zoneinfo import ZoneInfo

    from app.tickets.schemas import _seconds_between

    new_york = ZoneInfo("America/New_York")
    assert _seconds_between(datetime(9999, 12, 31, 7, 0, tzinfo=new_york),
                            datetime(9999, 12, 31, 21, 0, 0, 999_999, tzinfo=new_york)) == 50_400
    with pytest.raises(TypeError):
        _seconds_between(datetime(2025, 1, 1), datetime(2025, 1, 2, tzinfo=UTC))
