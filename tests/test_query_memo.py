"""A query string a schema loaded before is answered from memory, as marshmallow answered it."""

from __future__ import annotations

import uuid

import pytest
from marshmallow import RAISE
from webargs.flaskparser import abort

from app.extensions import MAX_QUERIES, MAX_QUERY_REMEMBERED, parser
from app.tickets.api import LIST_ARGS


def parsed(app, query: str) -> dict:
    with app.test_request_context(f"/api/v1/tickets?{query}"):
        return parser.parse(LIST_ARGS, location="query", unknown=RAISE)


def test_a_remembered_query_answers_a_fresh_copy_each_time(app):
    someone = uuid.uuid4()
    query = f"status=new,open&assignee_id={someone}&limit=5"
    first = parsed(app, query)
    assert first == {"status": ["new", "open"], "assignee_id": someone, "limit": 5}
    first["status"].append("closed")  # a view changing what it was given
    first["limit"] = 500
    assert parsed(app, query) == {"status": ["new", "open"], "assignee_id": someone, "limit": 5}
    assert parsed(app, query) is not parsed(app, query)


@pytest.mark.parametrize("query", ["limit=0", "limit=5&limit=6", "status=nonsense", "colour=red", "limit=%EF%BC%95",
                                   "created_after=yesterday", "tag="])
def test_a_refused_query_is_refused_every_time(app, query, monkeypatch):
    refusals = []
    monkeypatch.setattr(parser, "handle_error", lambda error, *args, **kwargs: refusals.append(error) or abort(422))
    for _ in range(2):
        with pytest.raises(Exception) as raised:
            parsed(app, query)
        assert getattr(raised.value, "code", None) == 422
    assert len(refusals) == 2  # each time marshmallow's own refusal, never a remembered answer


def test_memory_is_bounded(app):
    for n in range(MAX_QUERIES + 5):
        parsed(app, f"limit={n % 100 + 1}&category=c{n}")
    assert len(parser._parsed) <= MAX_QUERIES
    assert parsed(app, "limit=7&category=c3") == {"limit": 7, "category": "c3"}


def test_a_long_query_string_is_parsed_each_time_not_kept(app):
    parser._parsed.clear()
    query = f"q={'w' * 200}&category={'c' * 100}"
    assert len(query) > MAX_QUERY_REMEMBERED
    assert parsed(app, query) == {"q": "w" * 200, "category": "c" * 100, "limit": 50}
    assert parser._parsed == {}


@pytest.mark.parametrize("name, values, most", [
    ("status", ["new", "open", "pending", "resolved", "closed", "new"], 5), ("priority", ["low"] * 5, 4),
    ("status", ["new"] * 1500, 5)])
def test_a_list_longer_than_its_choices_is_refused(app, name, values, most, monkeypatch):
    refusals = []
    monkeypatch.setattr(parser, "handle_error", lambda error, *args, **kwargs: refusals.append(error) or abort(422))
    with pytest.raises(Exception) as raised:
        parsed(app, f"{name}={','.join(values)}")
    assert getattr(raised.value, "code", None) == 422
    assert refusals[0].messages == {"query": {name: [f"Name one to {most}."]}}
