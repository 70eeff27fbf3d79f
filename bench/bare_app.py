"""Bare Flask endpoints that set the ceilings the product's figures are divided by.

Same driver (psycopg via SQLAlchemy Core), the product's pool with its settings (`app.config`) and
the same gunicorn settings as the product, but no tenancy, auth, ORM or serialisation: one
statement (one row by primary key, 50 rows by an index, or one INSERT), in the transaction Core
opens by default (BEGIN, the statement, then COMMIT or the pool's ROLLBACK).
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from flask import Flask, jsonify, request

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


@app.post("/sink")
def sink():
    """Read a request body of any size in 1 MiB steps and throw it away (the server's own read speed)."""
    request.max_content_length = None
    received = 0
    while chunk := request.stream.read(1024 * 1024):
        received += len(chunk)
    return jsonify(received=received), 202
