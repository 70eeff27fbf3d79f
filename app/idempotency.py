"""`Idempotency-Key` for creating POSTs: a repeat gets the first response and creates nothing.

The key is claimed with `INSERT ... ON CONFLICT` in the same transaction as the work it guards.
A concurrent repeat blocks on the uncommitted claim until the first request commits (then it
replays the stored response) or rolls back (then it does the work itself), so two racing repeats
can never both create. Failed requests store nothing, so a client may retry them with the key.

A response that carries a secret shown once (a new API key) is kept sealed (`idempotent_sealed`):
encrypted with a key derived from the Idempotency-Key, which is itself kept only as an HMAC, so
the database alone cannot give the secret back; only the client that sent the key can replay it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Response, current_app, request
from flask_smorest import Blueprint
from sqlalchemy.dialects.postgresql import JSONB, UUID, insert
from sqlalchemy.orm import Mapped, mapped_column

from app.at_once import jsonb
from app.errors import Conflict, Invalid
from app.extensions import db
from app.models_base import TENANT_SCHEMA, created_at
from tenants import TenantStatement, autocommit_connection

RETENTION = timedelta(hours=24)
REPLAYED_HEADERS = ("ETag", "Location")
MAX_KEY = 255
HEADER_DOC = {"in": "header", "name": "Idempotency-Key", "schema": {"type": "string", "minLength": 1,
                                                                   "maxLength": MAX_KEY},
              "description": "Repeat the same request with the same key to get the first response; the same "
                             "key with another request answers 422. Keys are kept 24 hours."}


class IdempotencyRecord(db.Model):
    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.Index("ix_idempotency_keys_created", "created_at"), TENANT_SCHEMA)

    actor_key: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    endpoint: Mapped[str] = mapped_column(sa.String(200))
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    status_code: Mapped[int] = mapped_column(sa.SmallInteger)
    response: Mapped[bytes] = mapped_column(sa.LargeBinary, default=b"", server_default=sa.text("''::bytea"))
    response_headers: Mapped[dict] = mapped_column(JSONB, default=dict, server_default="{}")
    created_at: Mapped[datetime] = created_at()


def fingerprint(body: Any) -> str:
    """Return a keyed hash (HMAC under SECRET_KEY) of a JSON body that ignores key order and whitespace.

    Keyed, because a body may hold a password (a new user's, a signup's): a plain hash of it, kept
    beside the other fields, could be tried against a word list far faster than its Argon2 hash.
    """
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hmac.new(current_app.config["SECRET_KEY"].encode(), canonical, hashlib.sha256).hexdigest()


def check_key(key: str) -> None:
    """Refuse an Idempotency-Key that is empty or too long."""
    if not key or len(key) > MAX_KEY:
        raise Invalid.field("Idempotency-Key", f"Must be 1 to {MAX_KEY} characters.",
                            f"The Idempotency-Key header must be 1 to {MAX_KEY} characters.")


def claim(owner: uuid.UUID, key: str, endpoint: str, request_hash: str) -> IdempotencyRecord | None:
    """Reserve `key` for this request; return the earlier request's record if it was used already.

    A key reused with a different request raises Invalid (422, as the IETF Idempotency-Key draft asks).
    """
    check_key(key)
    table = IdempotencyRecord.__table__
    values = {"actor_key": owner, "key": key, "endpoint": endpoint, "request_hash": request_hash,
              "status_code": 0, "response": b"", "response_headers": {}}
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
        raise Invalid.field("Idempotency-Key", "Already used with a different request.",
                            "This Idempotency-Key was already used with a different request.")
    return record


@dataclass(frozen=True)
class Claim:
    """The Idempotency-Key a request claims: whose, which key, and for which request."""

    owner: uuid.UUID
    key: str  # as kept: the Idempotency-Key itself, or its HMAC when the response is sealed
    endpoint: str
    request_hash: str
    seal: bytes | None = None  # see `sealed_key`

    def params(self, status: int, headers: dict[str, str]) -> dict[str, Any]:
        """Return the bind parameters of `claim_in_sql` for a response of `status` with `headers`."""
        return {"idem_owner": self.owner, "idem_key": self.key, "idem_endpoint": self.endpoint,
                "idem_hash": self.request_hash, "idem_status": status, "idem_headers": jsonb(headers)}


def claim_in_sql(source: Any, response: sa.ColumnElement[bytes]) -> sa.Insert:
    """Return the INSERT claiming a key and keeping `response` (an expression over `source`) in one go.

    For a statement that does its whole change at once: the claim, the work and the stored
    response commit together or not at all. It returns a row only when this request got the key
    (new, or expired); the work is conditioned on that. A concurrent claim of the same key waits
    for the first to commit, then finds it (no row: see `earlier_response`) or, if it failed,
    takes the key itself.
    """
    table = IdempotencyRecord.__table__
    columns = ["actor_key", "key", "endpoint", "request_hash", "status_code", "response", "response_headers"]
    values = sa.select(
        sa.bindparam("idem_owner", type_=UUID(as_uuid=True)), sa.bindparam("idem_key", type_=sa.String),
        sa.bindparam("idem_endpoint", type_=sa.String), sa.bindparam("idem_hash", type_=sa.String),
        sa.bindparam("idem_status", type_=sa.SmallInteger), response,
        sa.bindparam("idem_headers", type_=JSONB)).select_from(source)
    stmt = insert(IdempotencyRecord).from_select(columns, values, include_defaults=False)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.actor_key, table.c.key],
        set_={**{c: stmt.excluded[c] for c in columns[2:]}, "created_at": sa.func.now()},
        where=table.c.created_at < sa.func.now() - sa.literal_column(f"interval '{int(RETENTION.total_seconds())} s'"),
    ).returning(table.c.key)


def kept_in_sql() -> sa.Exists:
    """Return the condition that the key `claim_in_sql` would claim is kept already (a replay), for work
    that must not even start then (a ticket number drawn for a replay would be a gap in the numbers)."""
    return sa.exists().where(IdempotencyRecord.actor_key == sa.bindparam("idem_owner", type_=UUID(as_uuid=True)),
                             IdempotencyRecord.key == sa.bindparam("idem_key", type_=sa.String),
                             IdempotencyRecord.created_at >= sa.func.now() - RETENTION)


# Kept keys only: a statement that never reached its claim (the work was refused first) may find
# an expired one, which a claim would have taken over.
_EARLIER = TenantStatement(sa.select(
    IdempotencyRecord.endpoint, IdempotencyRecord.request_hash, IdempotencyRecord.status_code,
    IdempotencyRecord.response, IdempotencyRecord.response_headers,
).where(IdempotencyRecord.actor_key == sa.bindparam("owner"), IdempotencyRecord.key == sa.bindparam("key"),
        IdempotencyRecord.created_at >= sa.func.now() - RETENTION))


def earlier_response(conn: Any, claim: Claim) -> Response:
    """Return the stored first response for a key another request holds, or raise Invalid (another request).

    Raises Conflict in the rare case the key's holder let go of it meanwhile: the client may retry.
    """
    response = stored_response(conn, claim)
    if response is None:
        raise Conflict("A request with this Idempotency-Key was in progress; send it again.")
    return response


def stored_response(conn: Any, claim: Claim) -> Response | None:
    """Return the stored first response for `claim`'s key, or None if none is kept.

    Raises Invalid if the key was used with another request.
    """
    row = _EARLIER.one(conn, {"owner": claim.owner, "key": claim.key})
    if row is None:
        return None
    endpoint, request_hash, status, body, headers = row
    if endpoint != claim.endpoint or request_hash != claim.request_hash:
        raise Invalid.field("Idempotency-Key", "Already used with a different request.",
                            "This Idempotency-Key was already used with a different request.")
    return replay(status, bytes(body), headers)


def holds_response(claim: Claim) -> bool:
    """Tell whether `claim`'s key already holds a response, or another request's (a read: it claims nothing)."""
    with autocommit_connection() as conn:
        try:
            return stored_response(conn, claim) is not None
        except Invalid:
            return True


def endpoint_of(method: str, rule: str, kwargs: dict[str, Any]) -> str:
    """Return what a kept key records as its request's endpoint: the method, the route and its arguments.

    A socket's message frame names the REST route it stands for, so one key is one message on both.
    """
    return f"{method} {rule}:{sorted(kwargs.items())}"


def claim_of_request(kwargs: dict[str, Any], sealed: bool = False) -> Claim | None:
    """Return the claim of this request's `Idempotency-Key` for a view called with `kwargs`, None without one."""
    from app.auth.actor import current_actor

    key = request.headers.get("Idempotency-Key")
    actor = current_actor()
    owner = actor.api_key_id or actor.user_id
    if key is None or owner is None:
        return None
    check_key(key)
    endpoint = endpoint_of(request.method, request.url_rule.rule, kwargs)
    request_hash = fingerprint(request.get_json(silent=True))
    if not sealed:
        return Claim(owner, key, endpoint, request_hash)
    kept, seal = sealed_key(key, owner.bytes)
    return Claim(owner, kept, endpoint, request_hash, seal)


def claimed_at_once(view: Callable) -> Callable:
    """Pass a creating view the `claim` of this request's `Idempotency-Key` (None without one).

    For views whose service does the whole change in one statement, claim and stored response
    included (`claim_in_sql`); documents the header as `idempotent` does. A case such a view
    still does through the session goes through `once_in_session`.
    """

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Response:
        return view(*args, claim=claim_of_request(kwargs), **kwargs)

    return Blueprint.doc(parameters=[HEADER_DOC])(wrapped)


def once_in_session(claimed: Claim | None, work: Callable[[], Response]) -> Response:
    """Run `work`, a change through the session that answers `Response`, once per key, and commit it.

    The key is claimed with `INSERT ... ON CONFLICT` in the same transaction as the work: a racing
    repeat waits for the first to commit, then replays, or to roll back, then does the work itself.
    """
    if claimed is not None:
        earlier = claim(claimed.owner, claimed.key, claimed.endpoint, claimed.request_hash)
        if earlier is not None:
            db.session.rollback()
            return _replay(earlier, claimed.seal)
    response = work()
    if claimed is not None:
        _store_response(claimed.owner, claimed.key, response, claimed.seal)
    db.session.commit()
    return response


def idempotent(view: Callable, sealed: bool = False) -> Callable:
    """Run a creating view once per `Idempotency-Key`, and commit its work (`once_in_session`).

    A repeat of the key with the same request gets the first response (`Idempotent-Replayed:
    true`) and creates nothing. Place it above `@blp.response`, so it keeps the serialised
    response; the view itself does not commit. `sealed`: see `idempotent_sealed`.
    """

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Response:
        return once_in_session(claim_of_request(kwargs, sealed), lambda: view(*args, **kwargs))

    return Blueprint.doc(parameters=[HEADER_DOC])(wrapped)


def idempotent_sealed(view: Callable) -> Callable:
    """`idempotent` for a view whose response holds a secret shown once: the kept response is sealed
    with the Idempotency-Key (see the module's docstring), so only a repeat of the key can read it."""
    return idempotent(view, sealed=True)


def idempotent_upload(*fields: str) -> Callable[[Callable], Callable]:
    """Run an upload view once per `Idempotency-Key`, and commit its work.

    An upload's body is a stream that is stored as it is read, so the key cannot be checked
    before the view runs as `idempotent` does: the view stores the file first, then the key is
    claimed, in the same transaction, with a fingerprint of `fields` of its response (the
    file's name, type, size and SHA-256, all computed while streaming). A repeat with the same
    bytes replays the first response and its transaction, with the file it stored, is rolled
    back; the same key with other bytes is refused with 422.
    """

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Response:
            from app.auth.actor import current_actor

            key = request.headers.get("Idempotency-Key")
            actor = current_actor()
            owner = actor.api_key_id or actor.user_id
            claimed = key is not None and owner is not None
            if claimed:
                check_key(key)  # before any byte of the body is read
            response = view(*args, **kwargs)
            if claimed:
                body = response.get_json()
                endpoint = endpoint_of(request.method, request.url_rule.rule, kwargs)
                earlier = claim(owner, key, endpoint, fingerprint({f: body.get(f) for f in fields}))
                if earlier is not None:
                    db.session.rollback()
                    return _replay(earlier)
                _store_response(owner, key, response)
            db.session.commit()
            return response

        return Blueprint.doc(parameters=[HEADER_DOC])(wrapped)

    return decorator


def purge_expired(batch: int = 5000) -> int:
    """Delete the current tenant's keys kept longer than `RETENTION` (a repeat of one is a new request
    by then); return how many. Run by the outbox relay's purge, so kept responses do not pile up."""
    table = IdempotencyRecord.__table__
    expired = table.c.created_at < sa.func.now() - RETENTION
    total = 0
    while True:
        doomed = sa.select(table.c.actor_key, table.c.key).where(expired).limit(batch)
        # `expired` again on the DELETE itself: a row a claim took over meanwhile (new created_at) is
        # re-checked against it once its lock is released, and kept; the subquery's view is not re-read.
        deleted = db.session.execute(sa.delete(table).where(
            sa.tuple_(table.c.actor_key, table.c.key).in_(doomed), expired)).rowcount
        db.session.commit()
        total += deleted
        if deleted < batch:
            return total


def sealed_key(key: str, owner: bytes) -> tuple[str, bytes]:
    """Return how an Idempotency-Key of `owner` whose response is sealed is kept (an HMAC under SECRET_KEY),
    and the AES-GCM key that seals the response (derived from the Idempotency-Key and `owner`; never kept)."""
    secret = current_app.config["SECRET_KEY"].encode()
    kept = "sealed:" + hmac.new(secret, owner + b"\0" + key.encode(), hashlib.sha256).hexdigest()
    return kept, hmac.new(key.encode(), b"sealed response\0" + owner + secret, hashlib.sha256).digest()


def seal(body: bytes, key: bytes) -> bytes:
    """Encrypt a response to keep (AES-GCM, a fresh nonce first)."""
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, body, None)


def unseal(kept: bytes, key: bytes) -> bytes:
    """Decrypt a kept response; Conflict if it cannot be (sealed under another SECRET_KEY)."""
    try:
        return AESGCM(key).decrypt(kept[:12], kept[12:], None)
    except InvalidTag:
        raise Conflict("This Idempotency-Key's first response can no longer be read; send the request "
                       "again with a new key.") from None


def _store_response(owner: uuid.UUID, key: str, response: Response, sealing: bytes | None = None) -> None:
    body = response.get_data() if sealing is None else seal(response.get_data(), sealing)
    db.session.execute(
        sa.update(IdempotencyRecord).where(IdempotencyRecord.actor_key == owner, IdempotencyRecord.key == key)
        .values(status_code=response.status_code, response=body,
                response_headers={h: response.headers[h] for h in REPLAYED_HEADERS if h in response.headers})
    )


def _replay(record: IdempotencyRecord, sealing: bytes | None = None) -> Response:
    body = record.response if sealing is None else unseal(record.response, sealing)
    return replay(record.status_code, body, record.response_headers)


def replay(status: int, body: bytes, headers: dict[str, str] | None) -> Response:
    """Return the first response again, byte for byte, marked `Idempotent-Replayed`."""
    response = Response(body, status=status, mimetype="application/json")
    response.headers.update(headers or {})
    response.headers["Idempotent-Replayed"] = "true"
    return response
