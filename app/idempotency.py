"""`Idempotency-Key` for creating POSTs: a repeat gets the first response and creates nothing.

The key is claimed with `INSERT ... ON CONFLICT` in the same transaction as the work it guards.
A concurrent repeat blocks on the uncommitted claim until the first request commits (then it
replays the stored response) or rolls back (then it does the work itself), so two racing repeats
can never both create. Failed requests store nothing, so a client may retry them with the key.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Response, jsonify, request
from flask_smorest import abort
from sqlalchemy.dialects.postgresql import JSONB, UUID, insert
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import TENANT_SCHEMA, created_at

RETENTION = timedelta(hours=24)
MAX_KEY = 255
HEADER_DOC = {"in": "header", "name": "Idempotency-Key", "schema": {"type": "string", "maxLength": MAX_KEY},
              "description": "Repeat the same request with the same key to get the first response."}


class IdempotencyRecord(db.Model):
    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.Index("ix_idempotency_keys_created", "created_at"), TENANT_SCHEMA)

    actor_key: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    endpoint: Mapped[str] = mapped_column(sa.String(200))
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    status_code: Mapped[int] = mapped_column(sa.SmallInteger)
    response_body: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[datetime] = created_at()


def fingerprint(body: Any) -> str:
    """Return a hash of a JSON body that ignores key order and whitespace."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def claim(owner: uuid.UUID, key: str, endpoint: str, request_hash: str) -> IdempotencyRecord | None:
    """Reserve `key` for this request; return the earlier request's record if it was used already.

    A key reused with a different request answers 422.
    """
    if not key or len(key) > MAX_KEY:
        abort(422, message="The Idempotency-Key header must be 1 to 255 characters.",
              errors={"Idempotency-Key": [f"Must be 1 to {MAX_KEY} characters."]})
    table = IdempotencyRecord.__table__
    values = {"actor_key": owner, "key": key, "endpoint": endpoint, "request_hash": request_hash,
              "status_code": 0, "response_body": {}}
    stmt = insert(IdempotencyRecord).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.actor_key, table.c.key],
        set_={**{k: stmt.excluded[k] for k in values if k not in ("actor_key", "key")},
              "created_at": sa.func.now()},
        where=table.c.created_at < sa.func.now() - RETENTION,  # an expired key starts afresh
    ).returning(table.c.key)
    if db.session.execute(stmt).first() is not None:
        return None
    record = db.session.execute(
        sa.select(IdempotencyRecord).where(IdempotencyRecord.actor_key == owner, IdempotencyRecord.key == key)
    ).scalar_one()
    if record.endpoint != endpoint or record.request_hash != request_hash:
        abort(422, message="This Idempotency-Key was already used with a different request.",
              errors={"Idempotency-Key": ["Already used with a different request."]})
    return record


def store(owner: uuid.UUID, key: str, status_code: int, body: dict[str, Any]) -> None:
    """Keep the response of the request that claimed `key`, in its transaction."""
    db.session.execute(
        sa.update(IdempotencyRecord).where(IdempotencyRecord.actor_key == owner, IdempotencyRecord.key == key)
        .values(status_code=status_code, response_body=body)
    )


def replay_or_claim(endpoint: str) -> Response | None:
    """For a request with an `Idempotency-Key`: the earlier response to replay, or None once claimed.

    Call at the start of a creating view, then `remember` its response body before committing.
    """
    from app.auth.actor import current_actor

    key = request.headers.get("Idempotency-Key")
    actor = current_actor()
    owner = actor.api_key_id or actor.user_id
    if key is None or owner is None:
        return None
    earlier = claim(owner, key, endpoint, fingerprint(request.get_json(silent=True)))
    if earlier is None:
        request.environ["tms.idempotency"] = (owner, key)
        return None
    db.session.rollback()
    response = jsonify(earlier.response_body)
    response.status_code = earlier.status_code
    response.headers["Idempotent-Replayed"] = "true"
    return response


def remember(body: dict[str, Any], status_code: int = 201) -> None:
    """Store the response of a request that claimed its key (no-op without a key)."""
    claimed = request.environ.get("tms.idempotency")
    if claimed is not None:
        store(*claimed, status_code, body)
