"""Bare Flask endpoints that set the ceilings the product's figures are divided by.

Same driver (psycopg via SQLAlchemy Core), the product's pool with its settings (`app.config`) and
the same gunicorn settings as the product, but no tenancy, auth, ORM or serialisation: one
statement (one row by primary key, 50 rows by an index, or one INSERT), in the transaction Core
opens by default (BEGIN, the statement, then COMMIT or the pool's ROLLBACK).

`/statement/<name>` is the other kind of ceiling: the product's own statement for a create, a
message post or a page of tickets (recorded by the bench from a real request, in
`BENCH_STATEMENTS`), run as the product runs it (one statement on a pooled connection in
autocommit) with no app around it; a page's rows go out as JSON objects, encoded with orjson as
the product's are. It is about the most the product could reach of a bare endpoint in that run.
"""

from __future__ import annotations

import os
import pickle
import random
import uuid
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, TypedDict

import orjson
import psycopg
import sqlalchemy as sa
from flask import Flask, Response, jsonify, request

from app.config import Config, engine_options

app = Flask(__name__)
engine = sa.create_engine(os.environ["DATABASE_URL"], **engine_options(vars(Config())))


@app.get("/hello")
def hello():
    return jsonify(hello="world")


@app.post("/insert")
def insert():
    with engine.begin() as conn:
        conn.execute(sa.text("insert into bench_bare (title) values ('x')"))
    return jsonify(ok=True), 201


@app.get("/select1")
def select1():
    with engine.connect() as conn:
        row = conn.execute(sa.text("select id, title, created_at from bench_bare where id = :id"), {"id": 1}).one()
    return jsonify(id=row.id, title=row.title, created_at=row.created_at.isoformat())


@app.get("/select50")
def select50():
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "select id, title, created_at from bench_bare order by created_at desc limit 50")).all()
    return jsonify(items=[{"id": r.id, "title": r.title, "created_at": r.created_at.isoformat()} for r in rows])


class Recorded(TypedDict):
    """A statement the bench recorded from one of the product's requests (`bench.tickets`)."""

    sql: str
    values: list[Any]
    binary: bool  # rows in binary, as the product asked for them
    fresh: list[int]  # values drawn anew for every run: the new row's id
    now: list[int]  # values set to the time of the run: a new row's times, as the product sets them
    rotate: dict[int, list[uuid.UUID]]  # values picked among these: the ticket a message goes to
    fields: list[str]  # a page's: the columns its JSON items carry (none: a write, answered 201)
    keep: int  # a page's: the rows it answers (it reads one more, to know whether another page follows)


@app.route("/statement/<name>", methods=["GET", "POST"])
def statement(name: str) -> Response | tuple[Response, int]:
    """Run the product's recorded statement `name` as the product runs it; a page answers its rows as JSON."""
    recorded = _recorded()[name]
    values = list(recorded["values"])
    for i in recorded["fresh"]:
        values[i] = uuid.uuid4()
    for i, choices in recorded["rotate"].items():
        values[i] = random.choice(choices)
    fairy = engine.raw_connection()
    try:
        raw = fairy.dbapi_connection
        now = datetime.now(raw.info.timezone)
        for i in recorded["now"]:
            values[i] = now
        raw.autocommit = True
        try:
            if recorded["fields"]:  # a page: on a cursor of its own, freed with its rows, as the product reads one
                with psycopg.RawCursor(raw) as cursor:
                    rows = cursor.execute(recorded["sql"], values, binary=recorded["binary"]).fetchall()
                    names = [column.name for column in cursor.description]
            else:  # one row: on a cursor kept with the connection, as the product keeps one
                _kept_cursor(raw).execute(recorded["sql"], values, binary=recorded["binary"]).fetchone()
        finally:
            raw.autocommit = False
    finally:
        fairy.close()
    if not recorded["fields"]:
        return jsonify(ok=True), 201
    at = [(field, names.index(field)) for field in recorded["fields"] if field in names]
    items = [{field: row[i] for field, i in at} for row in rows[:recorded["keep"]]]
    return Response(orjson.dumps({"items": items}), mimetype="application/json")


def _kept_cursor(raw: psycopg.Connection) -> psycopg.RawCursor:
    cursor = getattr(raw, "bench_cursor", None)
    if cursor is None:
        cursor = raw.bench_cursor = psycopg.RawCursor(raw)
    return cursor


@cache
def _recorded() -> dict[str, Recorded]:
    """The statements the bench recorded, by name (pickled by `bench.tickets`, this run's own file)."""
    return pickle.loads(Path(os.environ["BENCH_STATEMENTS"]).read_bytes())


@app.post("/sink")
def sink():
    """Read a request body of any size in 1 MiB steps and throw it away (the server's own read speed)."""
    request.max_content_length = None
    received = 0
    while chunk := request.stream.read(1024 * 1024):
        received += len(chunk)
    return jsonify(received=received), 202
