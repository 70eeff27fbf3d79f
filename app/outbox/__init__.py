"""The transactional outbox: events recorded in the same transaction as their cause.

`emit(topic, payload, data)` records the event once, in the `events` table, as the transaction
commits (after its last flush, so `data` may be a function that describes the state the
transaction leaves behind). Each handler subscribed to the topic gets an outbox row that points
at the event; other areas hang their own work off recorded events with `on_record` (webhook
deliveries do). After the commit the rows are handed to RQ at once (the fast path); the relay
(`flask outbox relay`) re-enqueues any row still unprocessed after a while, which covers a Redis
outage or a killed worker. A job locks its row, runs the handler and marks the row processed in
one transaction, so a row's work takes effect exactly once however often it is delivered.

Events with `data` are public: the event feed serves them and webhooks deliver them. Events
without are internal signals between areas (the queue changed, an upload waits for its scan).
Events are kept `EVENT_RETENTION_DAYS` (30), then purged by the relay.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert

from app import unit_of_work
from app.extensions import db
from tenants import current_tenant

Payload = dict[str, Any]
Data = dict[str, Any] | Callable[[], dict[str, Any]] | None
OUTBOX_ROWS = "outbox_rows"
EVENTS = "events"


@dataclass(frozen=True)
class RecordedEvent:
    """An event as written: its row id, public id, type and public data (None if internal)."""

    id: int
    uid: uuid.UUID
    type: str
    data: dict[str, Any] | None


@dataclass(frozen=True)
class Handler:
    """A function run in a worker for each event of a topic; `run_batch`, if set, takes many at once."""

    name: str
    queue: str
    func: Callable[[Payload], None]
    run_batch: Callable[[list[Payload]], None] | None = None


HANDLERS: dict[str, list[Handler]] = {}
BY_NAME: dict[str, Handler] = {}
RECORDERS: list[Callable[[list[RecordedEvent]], None]] = []


def subscribe(topic: str, queue: str = "default",
              batch: Callable[[list[Payload]], None] | None = None) -> Callable:
    """Register `func(payload)` to run in a worker, on `queue`, for each `topic` event.

    With `batch`, a job may hand many pending rows of the handler to `batch(payloads)` at once
    (see `app.worker`).
    """

    def decorator(func: Callable[[Payload], None]) -> Callable:
        handler = Handler(name=f"{func.__module__}.{func.__qualname__}", queue=queue, func=func, run_batch=batch)
        if handler.name not in BY_NAME:
            HANDLERS.setdefault(topic, []).append(handler)
            BY_NAME[handler.name] = handler
        return func

    return decorator


def on_record(recorder: Callable[[list[RecordedEvent]], None]) -> None:
    """Make `recorder(events)` run in each transaction that records events, right after they are written."""
    if recorder not in RECORDERS:
        RECORDERS.append(recorder)


def emit(topic: str, payload: Payload, data: Data = None) -> None:
    """Record an event in the current transaction: for handlers `payload`, for integrators `data`.

    `data` may be a function: it is called as the transaction commits, after its last flush, so
    the event carries the state the transaction leaves (a ticket's new version, say).
    """
    unit_of_work.at_commit(EVENTS, (topic, payload, data))


# The relay LISTENs here on every shard; a write that records events in SQL (`recorded_in_sql`) wakes
# it with the tenant's slug once it has committed (`app.outbox.wakes`).
WAKE_CHANNEL = "tms_outbox"
SQL_RECORDERS: list[Callable[[Any, str, sa.ColumnElement[bool] | None], sa.Insert | None]] = []


def on_record_in_sql(recorder: Callable[[Any, str, sa.ColumnElement[bool] | None], sa.Insert | None]) -> None:
    """Make `recorder(event_cte, topic, internal)` add its own INSERT to statements that record events in SQL.

    The SQL twin of `on_record`, for statements that write their events themselves.
    """
    if recorder not in SQL_RECORDERS:
        SQL_RECORDERS.append(recorder)


def recorded_in_sql(topic: str, source: Any, payload: sa.ColumnElement, data: sa.ColumnElement,
                    internal: sa.ColumnElement[bool] | None = None) -> list[Any]:
    """Return the data-modifying CTEs that record a `topic` event per row of `source` in one statement.

    The event, its handlers' outbox rows and whatever `on_record_in_sql` adds (webhook
    deliveries), as `emit` writes them at commit, for a statement that does its whole change at
    once. `internal` says whether the event is about something requesters may not see. The
    statement is run with `recorded_params(topic)`; once it has committed, `wake_relay()` has the
    relay hand the rows on.
    """
    from app.outbox.models import Event, OutboxRow, tenant_txid

    txid = tenant_txid(sa.bindparam("txid_offset", type_=sa.BigInteger))
    event = insert(Event).from_select([Event.type, Event.payload, Event.data, Event.txid], sa.select(
        sa.literal(topic), payload, data, txid).select_from(source), include_defaults=False).returning(Event.id).cte(
        "recorded_event")
    rows = sa.select(event.c.id, sa.func.unnest(sa.bindparam("outbox_handlers", type_=ARRAY(sa.String))))
    parts = [event, insert(OutboxRow).from_select([OutboxRow.event_id, OutboxRow.handler], rows,
                                                  include_defaults=False).cte("recorded_outbox")]
    for i, recorder in enumerate(SQL_RECORDERS):
        stmt = recorder(event, topic, internal)
        if stmt is not None:
            parts.append(stmt.cte(f"recorded_{i}"))
    return parts


def recorded_params(topic: str) -> dict[str, Any]:
    """Return the parameters `recorded_in_sql` needs at run time.

    The handlers subscribed to `topic` now, and the tenant's transaction id offset.
    """
    return {"outbox_handlers": [h.name for h in HANDLERS.get(topic, ())],
            "txid_offset": current_tenant().txid_offset}


def _record(items: list[tuple[str, Payload, Data]]) -> None:
    """Write the events a transaction emitted, their handlers' outbox rows, and what hangs off them."""
    from app.outbox.models import Event, OutboxRow, tenant_txid

    values = [{"type": topic, "payload": payload, "data": data() if callable(data) else data}
              for topic, payload, data in items]
    written = db.session.execute(
        insert(Event).values(txid=tenant_txid()).returning(Event.id, Event.uid, sort_by_parameter_order=True),
        values).all()
    recorded = [RecordedEvent(row.id, row.uid, v["type"], v["data"]) for row, v in zip(written, values, strict=True)]
    rows = [{"event_id": event.id, "handler": h.name} for event in recorded for h in HANDLERS.get(event.type, ())]
    if rows:
        slug = current_tenant().slug
        for row in db.session.execute(
                insert(OutboxRow).returning(OutboxRow.id, OutboxRow.handler, sort_by_parameter_order=True), rows):
            unit_of_work.after_commit(OUTBOX_ROWS, (slug, row.id, row.handler))
    for recorder in RECORDERS:
        recorder(recorded)


def init_app(app) -> None:
    unit_of_work.handle_at_commit(EVENTS, _record)
