"""Export: every matching ticket, streamed as CSV, a JSON array or NDJSON, as an attachment."""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from tenants.context import current_tenant


def _export(api, **params):
    resp = api.get("/api/v1/tickets/export?" + urlencode(params))
    assert resp.status_code == 200, resp.data[:500]
    return resp


def test_csv_is_an_attachment_with_every_ticket_in_number_order(tenant, new_ticket):
    tricky = 'He said "no",\nthen left; ünïcode ✓'
    made = [new_ticket("first", description=tricky, tags=["a", "b"]), new_ticket("second")]
    resp = _export(tenant.api)
    assert resp.headers["Content-Type"].startswith("text/csv")
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and disposition.endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(resp.data.decode())))
    assert [r["id"] for r in rows] == [t["id"] for t in made]
    assert rows[0]["description"] == tricky
    assert (rows[0]["number"], rows[0]["tags"], rows[0]["status"]) == ("1", "a, b", "new")
    assert rows[0]["created_at"].endswith("Z") and rows[0]["closed_at"] == ""


def test_a_csv_tags_cell_splits_back_into_its_tags(tenant, new_ticket):
    """Tags were joined by `;`, which a tag may hold: one tag `billing;refund` and two tags read the same."""
    one, two = new_ticket("one tag", tags=["billing;refund"]), new_ticket("two tags", tags=["billing", "refund"])
    cells = {r["id"]: r["tags"] for r in csv.DictReader(io.StringIO(_export(tenant.api).data.decode()))}
    assert [tag.strip() for tag in cells[one["id"]].split(",")] == ["billing;refund"]
    assert [tag.strip() for tag in cells[two["id"]].split(",")] == ["billing", "refund"]
    comma = tenant.api.post("/api/v1/tickets", json={"title": "comma", "tags": ["a,b"]})
    assert comma.status_code == 422  # what makes the cell unambiguous: a tag holds no comma


def test_json_is_one_array_matching_the_api(tenant, new_ticket):
    made = [new_ticket(f"t{i}", tags=["x"]) for i in range(3)]
    resp = _export(tenant.api, format="json")
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["Content-Disposition"].endswith('.json"')
    exported = json.loads(resp.data)
    assert [t["id"] for t in exported] == [t["id"] for t in made]
    for got, want in zip(exported, made, strict=True):
        assert {k: got[k] for k in ("number", "title", "tags", "status", "requester_id", "assignee_id")} == \
               {k: want[k] for k in ("number", "title", "tags", "status", "requester_id", "assignee_id")}


def test_empty_exports_are_well_formed(tenant):
    assert json.loads(_export(tenant.api, format="json").data) == []
    assert _export(tenant.api, format="ndjson").data == b""
    assert _export(tenant.api).data.decode().startswith("id,number,title")


def test_ndjson_has_one_ticket_a_line(tenant, new_ticket):
    made = [new_ticket("line\nbreak"), new_ticket('quote " and \\ backslash')]
    lines = _export(tenant.api, format="ndjson").data.decode().splitlines()
    assert [json.loads(line)["title"] for line in lines] == [t["title"] for t in made]


def test_export_applies_the_list_filters_and_q(tenant, new_ticket):
    a = new_ticket("router broken", priority="high")
    new_ticket("router slow", priority="low")
    new_ticket("printer broken", priority="high")
    tenant.api.post(f"/api/v1/tickets/{a['id']}/close")
    rows = json.loads(_export(tenant.api, format="json", q="router", priority="high").data)
    assert [r["id"] for r in rows] == [a["id"]]
    assert json.loads(_export(tenant.api, format="json", status="new", q="broken").data)[0]["title"] == "printer broken"


def test_a_large_export_streams_every_row(tenant, in_tenant):
    total = 5000
    with in_tenant(tenant) as session:
        session.execute(sa.text(f'INSERT INTO "{current_tenant().schema}".tickets (number, title, description) '
                                "SELECT n, 'bulk', repeat('x', 200) FROM generate_series(1, :total) AS n"),
                        {"total": total})
        session.execute(sa.text(f"select setval('\"{current_tenant().schema}\".ticket_number_seq', :total)"),
                        {"total": total})
        session.commit()
    resp = tenant.api.get("/api/v1/tickets/export?format=json")
    assert resp.is_streamed
    chunks = list(resp.response)
    assert len(chunks) > 10
    exported = json.loads(b"".join(chunks))
    assert [t["number"] for t in exported] == list(range(1, total + 1))
    rows = list(csv.reader(io.StringIO(_export(tenant.api).data.decode())))
    assert len(rows) == total + 1


def test_requesters_export_only_their_own(tenant, new_ticket):
    requester = tenant.key_for(tenant.user("requester"))
    mine = new_ticket("mine", api=requester)
    new_ticket("not mine")
    assert [t["id"] for t in json.loads(_export(requester, format="json").data)] == [mine["id"]]


def test_a_search_export_finds_messages_from_the_text_indexes(app, tenant, new_ticket):
    """`q` matches a ticket or one of its messages, read from both text indexes at once: checking each
    ticket's messages one by one (an EXISTS per ticket) read every ticket and message of a large tenant."""
    from app.auth.actor import Actor
    from app.tickets.export import export_select

    requester = tenant.key_for(tenant.user("requester"))
    by_message, by_title = new_ticket("quiet one", api=requester), new_ticket("router broken", api=requester)
    new_ticket("router of someone else")
    note = tenant.api.post(f"/api/v1/tickets/{by_message['id']}/messages", json={"body": "the router again"})
    assert note.status_code == 201
    internal = new_ticket("nothing here", api=requester)
    tenant.api.post(f"/api/v1/tickets/{internal['id']}/messages", json={"body": "router", "internal": True})
    staff = {r["id"] for r in json.loads(_export(tenant.api, format="json", q="router").data)}
    assert by_message["id"] in staff and by_title["id"] in staff and internal["id"] in staff
    mine = [r["id"] for r in json.loads(_export(requester, format="json", q="router").data)]
    assert mine == [by_message["id"], by_title["id"]]  # their own, never by an internal note
    assert json.loads(_export(tenant.api, format="json", q="router -router").data) == []
    with app.test_request_context():
        sql = str(export_select(Actor(user_id=None, role="admin"), {"q": "router"}, "json"))
    assert "EXISTS" not in sql.upper() and "UNION" in sql.upper()


@pytest.mark.parametrize("params", [{"format": "xml"}, {"sort": "number"}, {"status": "bogus"},
                                    {"limit": "10"}, {"created_before": "soon"}])
def test_bad_export_parameters_answer_422(tenant, params):
    resp = tenant.api.get("/api/v1/tickets/export?" + urlencode(params))
    assert resp.status_code == 422
    assert resp.get_json()["code"] == 422


def test_json_export_has_exactly_the_api_fields(tenant, new_ticket):
    from app.tickets.schemas import TicketSchema

    made = new_ticket("fields", tags=["x"])
    tenant.api.post(f"/api/v1/tickets/{made['id']}/close", json={"resolution": "done"})
    api = tenant.api.get(f"/api/v1/tickets/{made['id']}").get_json()
    exported = json.loads(_export(tenant.api, format="json").data)[0]
    assert list(exported) == list(TicketSchema().dump_fields) == list(api)
    for name in ("resolution_seconds", "first_response_seconds", "version", "tags", "resolution"):
        assert exported[name] == api[name], name


@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson"])
def test_head_answers_the_headers_without_starting_an_export(tenant, new_ticket, monkeypatch, fmt):
    """A HEAD (a link checker, a download manager) takes no export slot and begins no COPY."""
    from app.tickets import export

    new_ticket("one")
    get = _export(tenant.api, format=fmt)
    get.close()  # its COPY's generator ends here, as a server ends it (left to the GC it upset CPython 3.11's parser)

    def no_export():
        raise AssertionError("HEAD opened an export connection")

    monkeypatch.setattr(export, "open_connection", no_export)
    head = tenant.api.client.head("/api/v1/tickets/export?format=" + fmt,
                                  headers={"Authorization": f"Bearer {tenant.key}"})
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Type"] == get.headers["Content-Type"]
    assert head.headers["Content-Disposition"].endswith(f'.{fmt}"')
    assert "Content-Length" not in head.headers
    bad = tenant.api.client.head("/api/v1/tickets/export?format=xml", headers={"Authorization": f"Bearer {tenant.key}"})
    assert bad.status_code == 422
