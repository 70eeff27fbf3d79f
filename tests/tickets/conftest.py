"""Helpers for ticket tests: a ticket factory, direct reads of a tenant's tables, recorded events."""

from __future__ import annotations

import json
import uuid

import pytest
import redis as redis_lib
import sqlalchemy as sa

from app import outbox
from app.audit import AuditEntry
from app.conversation.models import Message
from app.outbox.models import Event, OutboxRow
from app.realtime import channel
from app.tickets.models import Ticket
from tenants.resolution import active_tenant
from tests import helpers

EVENT_TOPICS = ("ticket.created", "ticket.updated", "ticket.assigned", "ticket.closed")
RECORDER = "tests.tickets.recorder"


@pytest.fixture
def new_ticket(tenant):
    """Return a factory that creates a ticket in `tenant` (or through `api`) and returns its JSON."""

    def make(title: str = "Help", api=None, **fields) -> dict:
        return helpers.new_ticket(api or tenant.api, title, **fields)

    return make


@pytest.fixture
def table_counts(in_tenant):
    """Return a function counting the rows a tenant has in the tables a ticket change writes."""

    def counts(tenant) -> dict[str, int]:
        with in_tenant(tenant) as session:
            return {model.__tablename__: session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()
                    for model in (Ticket, AuditEntry, Event, OutboxRow)}

    return counts


@pytest.fixture
def recorded_events(monkeypatch, in_tenant):
    """Subscribe a recording handler to the ticket topics; return a reader of its outbox rows."""
    handler = outbox.Handler(name=RECORDER, queue="default", func=lambda payload: None)
    monkeypatch.setitem(outbox.BY_NAME, RECORDER, handler)
    for topic in EVENT_TOPICS:
        monkeypatch.setitem(outbox.HANDLERS, topic, [*outbox.HANDLERS.get(topic, []), handler])

    def read(tenant) -> list[tuple[str, dict]]:
        with in_tenant(tenant) as session:
            rows = session.execute(sa.select(Event.type, Event.payload).join(OutboxRow, OutboxRow.event_id == Event.id)
                                   .where(OutboxRow.handler == RECORDER).order_by(OutboxRow.id)).all()
            return [(r.type, r.payload) for r in rows]

    return read


@pytest.fixture
def audit_entries(in_tenant):
    """Return a reader of the audit entries of one entity."""

    def read(tenant, entity_id: str) -> list[AuditEntry]:
        with in_tenant(tenant) as session:
            rows = session.execute(sa.select(AuditEntry).where(AuditEntry.entity_id == uuid.UUID(entity_id))
                                   .order_by(AuditEntry.id)).scalars().all()
            session.expunge_all()
            return list(rows)

    return read


@pytest.fixture
def add_message(in_tenant):
    """Return a function that stores a message on a ticket directly (the conversation API is not ours)."""

    def add(tenant, ticket: dict, body: str, internal: bool = False) -> None:
        with in_tenant(tenant) as session:
            seq = session.execute(sa.select(sa.func.coalesce(sa.func.max(Message.seq), 0) + 1)
                                  .where(Message.ticket_id == uuid.UUID(ticket["id"]))).scalar_one()
            session.add(Message(id=uuid.uuid4(), ticket_id=uuid.UUID(ticket["id"]), seq=seq, body=body,
                                internal=internal))
            session.commit()

    return add


@pytest.fixture
def live_events(services, in_tenant):
    """Return a function that subscribes to a ticket's live channel and returns a reader."""
    client = redis_lib.Redis.from_url(services.redis_url)
    subscriptions = []

    def subscribe(tenant, ticket_id: str):
        with in_tenant(tenant):
            tenant_id = active_tenant(tenant.slug).id
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(channel(str(tenant_id), ticket_id))
        pubsub.get_message(timeout=2)  # the subscription's confirmation: listening from here on
        subscriptions.append(pubsub)

        def read(timeout: float = 2.0) -> list[dict]:
            events = []
            while (message := pubsub.get_message(timeout=timeout)) is not None:
                events.append(json.loads(message["data"]))
                timeout = 0.2
            return events

        return read

    yield subscribe
    for pubsub in subscriptions:
        pubsub.close()
    client.close()
