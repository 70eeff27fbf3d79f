"""A new ticket in one round trip: the ticket, its audit entry, its event, outbox rows and webhook
deliveries, and the Idempotency-Key's claim with the response to replay, in one statement.

Through the ORM a create took a BEGIN, an INSERT per table and a COMMIT, then a Redis call to
hand the outbox rows on. Here one INSERT ... with data-modifying CTEs does all of it on an
autocommit connection, so it commits (or fails) whole; then the outbox relay is woken
(`app.outbox.wakes`) and hands the rows to RQ (its sweep still covers a lost wake).

Everything but the number is known before the statement runs (the id and times are chosen
here, in the connection's time zone, as Postgres would return them), so the response and the
event are made from `TicketSchema` with a stand-in number that SQL replaces. The response body
and ETag are checked against the row the INSERT returns; should they ever differ (a trigger of the
database's changing the row), the answer is the row's and the stored response is corrected in a
second statement, while the event and the audit entry keep what this code wrote. Nothing of the
app's own makes them differ: every create field is the column of its name with a default here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from types import SimpleNamespace
from typing import Any

import orjson
import sqlalchemy as sa
from flask import Response
from marshmallow import missing
from sqlalchemy.dialects.postgresql import JSONB, insert

from app.at_once import STAND_IN, Spliced, jsonb
from app.audit import AuditEntry
from app.auth.actor import Actor
from app.idempotency import (
    Claim,
    IdempotencyRecord,
    claim_in_sql,
    earlier_response,
    kept_in_sql,
    stored_response,
)
from app.outbox import recorded_in_sql, recorded_params
from app.outbox.wakes import wake_relay
from app.tickets.listing import LISTED_COLUMNS
from app.tickets.models import Ticket
from app.tickets.reads import NUMBER, VERSION, columns_over, dump_row
from app.tickets.schemas import dump_ticket
from app.tickets.services import CREATE_FIELDS, SNAPSHOT_FIELDS, etag_of_version, new_ticket_values
from tenants import TenantStatement, autocommit_connection

NUMBER_SEQUENCE = sa.Sequence("ticket_number_seq", schema="tenant")
# Columns a new ticket is given values for: what a create takes (the schema's load fields), what it
# sets itself, and those with a Python default.
GIVEN = (*CREATE_FIELDS, "id", "status", "created_at", "updated_at")
if any(not field.required and field.load_default is missing for field in CREATE_FIELDS.values()):
    raise TypeError("a field a create takes needs a load_default: the statement gives every column it names")
if any(field.attribute or field.data_key or name not in Ticket.__table__.c for name, field in CREATE_FIELDS.items()):
    raise TypeError("a field a create takes is the ticket's column of the same name")
DEFAULTED = tuple(c.key for c in Ticket.__table__.c if c.key not in GIVEN and c.computed is None
                  and c.default is not None and c.default.is_scalar)
_UNSET = {c.key: None for c in LISTED_COLUMNS if c.key not in (*GIVEN, *DEFAULTED, "number")}


@dataclass(frozen=True)
class NewTicket:
    """A created ticket's response (body bytes and ETag), or the replay of an earlier one."""

    body: bytes
    etag: str
    replay: Response | None = None


def create_ticket(actor: Actor, claim: Claim | None, **fields: Any) -> NewTicket:
    """Open a ticket from a create's loaded `fields` as `services.create_ticket` does, in one statement;
    replay an earlier response for `claim`."""
    given = new_ticket_values(actor, fields)
    with autocommit_connection() as conn:
        now = datetime.now(conn.info.timezone)
        values: dict[str, Any] = {
            **given, "id": uuid.uuid4(), "status": "new", "created_at": now, "updated_at": now,
            **{k: Ticket.__table__.c[k].default.arg for k in DEFAULTED}}
        body = orjson.dumps(dump_ticket(SimpleNamespace(**_UNSET, **values, number=STAND_IN)))
        spliced = Spliced.around(body, "number")
        etag = etag_of_version(values["version"])
        params = {
            **values, **recorded_params("ticket.created"), **spliced.params(),
            "audit_actor": actor.user_id, "audit_key": actor.api_key_id,
            "audit_after": jsonb({f: values.get(f) for f in SNAPSHOT_FIELDS}),
            "event_payload": jsonb({"ticket_id": str(values["id"])}),
            "event_data": jsonb(b'{"ticket":%s}' % body),
        }
        statement = _statement(claim is not None)
        if claim is not None:
            params.update(claim.params(201, {"ETag": f'"{etag}"'}))
        row = statement.one(conn, params)
        if row is None:
            replay = stored_response(conn, claim)
            if replay is not None:
                return NewTicket(b"", "", replay=replay)
            # The key was kept when the statement looked, and is not now: its first request let go of it
            # (rolled back), or it expired in between. Either way it is free: claim it again, once.
            row = statement.one(conn, params)
            if row is None:
                return NewTicket(b"", "", replay=earlier_response(conn, claim))
        wake_relay()
        created, row_etag = orjson.dumps(dump_row(row)), etag_of_version(row[VERSION])
        if claim is not None and (created != spliced.with_number(row[NUMBER]) or row_etag != etag):
            _CORRECT.run(conn, {"owner": claim.owner, "key": claim.key, "response": created,
                                "headers": jsonb({"ETag": f'"{row_etag}"'})})
    return NewTicket(created, row_etag)


@cache
def _statement(claimed: bool) -> TenantStatement:
    """Build the statement once, on first use: by then every outbox handler and recorder has registered."""
    columns = [*GIVEN, *DEFAULTED]
    given = [sa.bindparam(k, type_=Ticket.__table__.c[k].type) for k in columns]
    if claimed:
        # No number is drawn for a replay: the next new ticket gets the next number. (Two requests
        # with one key at once may still each draw one: the one that waits for the claim wastes it.)
        number = sa.select(NUMBER_SEQUENCE.next_value().label("number")).where(~kept_in_sql()).cte("drawn")
        claim = claim_in_sql(number, Spliced.sql(number.c.number)).cte("claimed")
        source = sa.select(*given, number.c.number).where(sa.exists(sa.select(claim.c.key)))
        columns.append("number")
    else:
        source = sa.select(*given)
    ticket = insert(Ticket).from_select(columns, source, include_defaults=False).returning(*LISTED_COLUMNS).cte(
        "created")
    audit = insert(AuditEntry).from_select(
        ["actor_id", "api_key_id", "entity", "entity_id", "action", "after"],
        sa.select(sa.bindparam("audit_actor", type_=AuditEntry.actor_id.type),
                  sa.bindparam("audit_key", type_=AuditEntry.api_key_id.type), sa.literal("ticket"), ticket.c.id,
                  sa.literal("created"), sa.bindparam("audit_after", type_=JSONB)),
        include_defaults=False).cte("audited")
    data = sa.func.jsonb_set(sa.bindparam("event_data", type_=JSONB), sa.literal_column("'{ticket,number}'"),
                             sa.func.to_jsonb(ticket.c.number))
    events = recorded_in_sql("ticket.created", ticket, sa.bindparam("event_payload", type_=JSONB), data)
    return TenantStatement(sa.select(*columns_over(ticket)).add_cte(audit, *events))

_CORRECT = TenantStatement(
    sa.update(IdempotencyRecord).where(IdempotencyRecord.actor_key == sa.bindparam("owner"),
                                       IdempotencyRecord.key == sa.bindparam("key"))
    .values(response=sa.bindparam("response", type_=sa.LargeBinary),
            response_headers=sa.bindparam("headers", type_=JSONB)))
