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
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask_smorest import abort
from sqlalchemy.dialects.postgresql import insert

from app.extensions import db
from app.idempotency import IdempotencyRecord

RETENTION = timedelta(hours=24)
MAX_KEY = 255


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
