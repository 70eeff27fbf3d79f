"""Bare Flask endpoints that set the ceilings the product's figures are divided by.

Same driver (psycopg via SQLAlchemy Core), the product's pool with its settings (`app.config`) and
the same gunicorn settings as the product, but no tenancy, auth, ORM or serialisation: one
statement (one row by primary key, 50 rows by an index, or one INSERT), in the transaction Core
opens by default (BEGIN, the statement, then COMMIT or the pool's ROLLBACK).

`/statement/<name>` is the other kind of ceiling: the product's own statement for a create, a
message post or a page of tickets (recorded by the bench from a real request, in
`BENCH_STATEMENTS`), run as the product runs it (one statement on a pooled connection in
autocommit) with no app around it; a page's rows go out as JSON objects, encoded as the product
encodes them. What the product reaches of a bare endpoint can be no more than this.
"""

from __future__ import annotations

import os
import pickle
import random
import uuid
from functools import cache
from pathlib import Path

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


@app.route("/statement/<name>", methods=["GET", "POST"])
def statement(name: str):
    """Run the product's recorded statement `name`, with a new id and one of its recorded tickets.

    GET answers the rows (a page), POST only that it was written.
    """
    recorded = _recorded()[name]
    values = list(recorded["values"])
    for i in recorded["fresh"]:
        values[i] = uuid.uuid4()
    for i, choices in recorded["rotate"].items():
        values[i] = random.choice(choices)
    fairy = engine.raw_connection()
    try:
        raw = fairy.dbapi_connection
        cursor = getattr(raw, "bench_cursor", None)  # kept with the connection, as the product keeps one
        if cursor is None:
            cursor = raw.bench_cursor = psycopg.RawCursor(raw)
        raw.autocommit = True
        try:
            rows = cursor.execute(recorded["sql"], values, binary=True).fetchall()
            names = [column.name for column in cursor.description]
        finally:
            raw.autocommit = False
    finally:
        fairy.close()
    if request.method == "GET":
        return Response(orjson.dumps({"items": [dict(zip(names, row, strict=True)) for row in rows]}),
                        mimetype="application/json")
    return jsonify(ok=True), 201


@cache
def _recorded() -> dict[str, dict]:
    """The statements the bench recorded, by name: their SQL, their values, which values to draw anew
    (`fresh`, ids) and which to pick among recorded ones (`rotate`), pickled by `bench.tickets`."""
    return pickle.loads(Path(os.environ["BENCH_STATEMENTS"]).read_bytes())


@app.post("/sink")
def sink():
    """Read a request body of any size in 1 MiB steps and throw it away (the server's own read speed)."""
    request.max_content_length = None
    received = 0
    while chunk := request.stream.read(1024 * 1024):
        received += len(chunk)
    return jsonify(received=received), 202
