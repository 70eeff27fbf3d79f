"""Work that may happen only once a transaction has committed, wired in this one place.

Services call `after_commit(kind, item)` while they change data: publish a live event, hand
outbox rows to RQ, drop cached API keys. The items wait on the session; when its transaction
commits, each kind's handler gets all of its items in one call (ten live events go out in one
Redis pipeline), and when it rolls back they are dropped, so nothing is announced that did not
happen. Each area registers its handler with `handle(kind, handler)` from its `init_app`.

The mirror image, `after_rollback(kind, item)`, undoes work done outside the database for a
transaction that then does not commit (a file stored for an upload whose row was refused): its
items go to their handler when the transaction ends any other way than by a commit (a rollback,
or a session closed with the transaction still open), and are dropped when it commits.

Work that must be written *in* the transaction, but only once everything else in it is (the
events a transaction emits, with the state it leaves behind), goes through `at_commit(kind,
item)`: just before the outermost commit, the session is flushed and each kind's `handle_at_commit`
handler gets its items and may write more rows, which commit with the rest or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Flask

from app.extensions import db
from tenants import TenantSession

log = logging.getLogger(__name__)
PENDING = "tms_after_commit"
UNDO = "tms_after_rollback"
AT_COMMIT = "tms_at_commit"
_handlers: dict[str, Callable[[list[Any]], None]] = {}
_at_commit_handlers: dict[str, Callable[[list[Any]], None]] = {}


def init_app(app: Flask) -> None:
    if not sa.event.contains(TenantSession, "after_commit", _run):
        sa.event.listen(TenantSession, "after_commit", _run)
        sa.event.listen(TenantSession, "after_soft_rollback", _discard)
        sa.event.listen(TenantSession, "after_transaction_end", _undo)
        sa.event.listen(TenantSession, "before_commit", _write_at_commit)


def handle(kind: str, handler: Callable[[list[Any]], None]) -> None:
    """Make `handler(items)` receive the items of `kind` of every transaction that commits."""
    _handlers[kind] = handler


def handle_at_commit(kind: str, handler: Callable[[list[Any]], None]) -> None:
    """Make `handler(items)` write the items of `kind` into their transaction just before it commits."""
    _at_commit_handlers[kind] = handler


def at_commit(kind: str, item: Any) -> None:
    """Queue `item` for the `kind` handler, to be written into the current transaction as it commits."""
    if kind not in _at_commit_handlers:
        raise LookupError(f"no at-commit handler for {kind!r}")
    session = db.session()
    if not session.in_transaction():
        session.begin()
    session.info.setdefault(AT_COMMIT, {}).setdefault(kind, []).append(item)


def after_commit(kind: str, item: Any) -> None:
    """Queue `item` for the `kind` handler, to run only if the current transaction commits."""
    if kind not in _handlers:
        raise LookupError(f"no after-commit handler for {kind!r}")
    session = db.session()
    if not session.in_transaction():
        session.begin()  # the work belongs to a unit of work, so there must be one to roll back
    session.info.setdefault(PENDING, {}).setdefault(kind, []).append(item)


def after_rollback(kind: str, item: Any) -> None:
    """Queue `item` for the `kind` handler, to run only if the current transaction does not commit."""
    if kind not in _handlers:
        raise LookupError(f"no after-rollback handler for {kind!r}")
    session = db.session()
    if not session.in_transaction():
        session.begin()  # so a later failure that ends it without a commit undoes the item
    session.info.setdefault(UNDO, {}).setdefault(kind, []).append(item)
def _write_at_commit(session: sa.orm.Session) -> None:
    if session.in_nested_transaction():
        return  # a SAVEPOINT is being released; the outer commit writes the items
    # A handler may queue more (an event whose handler emits in the same transaction): loop until none.
    while pending := session.info.pop(AT_COMMIT, None):
        session.flush()  # the items describe the state the transaction leaves behind
        for kind, items in pending.items():
            _at_commit_handlers[kind](items)  # a failure here fails the commit: the items belong to it


def _run(session: sa.orm.Session) -> None:
    if session.in_nested_transaction():
        return  # SQLAlchemy says after_commit for a released SAVEPOINT too; the unit of work goes on
    session.info.pop(UNDO, None)
    pending: dict[str, list[Any]] = session.info.pop(PENDING, None) or {}
    _call(pending, "after-commit")


def _call(pending: dict[str, list[Any]], what: str) -> None:
    for kind, items in pending.items():
        try:
            _handlers[kind](items)
        except Exception:  # the commit (or rollback) stands; what follows it is best effort by design
            log.exception("%s work %r failed", what, kind)


def _undo(session: sa.orm.Session, transaction: sa.orm.SessionTransaction) -> None:
    if transaction.parent is None and transaction.nested is False:
        _call(session.info.pop(UNDO, None) or {}, "after-rollback")


def _discard(session: sa.orm.Session, previous_transaction: object) -> None:
    if not session.in_transaction():  # the whole unit of work rolled back, not a savepoint
        session.info.pop(PENDING, None)
        session.info.pop(AT_COMMIT, None)
