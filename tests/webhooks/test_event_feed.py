"""The event feed: complete and in one order while events are written, one tenant's only, kept 30 days."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import sqlalchemy as sa

from app.extensions import db
from app.idempotency import RETENTION, IdempotencyRecord, purge_expired
from app.outbox.dispatch import purge_events, purge_once
from app.outbox.models import Event
from app.webhooks.models import WebhookDelivery
from tenants import schema_for
from tests.helpers import ApiClient, new_ticket, post_message, subscribe_webhook


def read_feed(api: ApiClient, cursor: str | None = None, **query) -> tuple[list[dict], str]:
    """Follow `next_cursor` to the newest event; return the events and the cursor to poll with."""
    items = []
    while True:
        resp = api.get("/api/v1/events", query_string={"limit": 7, **({"cursor": cursor} if cursor else {}),
                                                        **query})
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        items += body["items"]
        cursor = body["poll_cursor"]
        if body["next_cursor"] is None:
            return items, cursor
        assert body["next_cursor"] == body["poll_cursor"]


def test_the_feed_pages_every_public_event_in_order_and_filters_by_type(tenant):
    ticket = new_ticket(tenant.api, "one")
    post_message(tenant.api, ticket["id"], body="hello")
    post_message(tenant.api, ticket["id"], body="note", internal=True)
    tenant.api.post(f"/api/v1/tickets/{ticket['id']}/close")
    items, cursor = read_feed(tenant.api)
    assert [e["type"] for e in items] == ["ticket.created", "message.created", "message.created", "ticket.closed"]
    assert items[2]["data"]["message"]["internal"] is True  # staff read internal notes
    assert all(set(e) == {"id", "type", "created_at", "data"} for e in items)
    only, _ = read_feed(tenant.api, types="ticket.closed,ticket.created")
    assert [e["type"] for e in only] == ["ticket.created", "ticket.closed"]
    # Polling from the end finds nothing until something happens, then exactly that.
    assert read_feed(tenant.api, cursor) == ([], cursor)
    new_ticket(tenant.api, "two")
    later, _ = read_feed(tenant.api, cursor)
    assert [(e["type"], e["data"]["ticket"]["title"]) for e in later] == [("ticket.created", "two")]


def test_a_poll_for_a_rare_type_moves_past_the_events_of_other_types_it_read(tenant):
    """Its poll cursor stayed at its last match, so every poll read again every event since."""
    for n in range(9):
        new_ticket(tenant.api, f"t{n}")
    _, everything = read_feed(tenant.api)
    items, rare = read_feed(tenant.api, types="ticket.closed")
    assert items == [] and _place(rare) == _place(everything)  # past the nine tickets, as a poll of every type
    ticket = new_ticket(tenant.api, "ten")
    tenant.api.post(f"/api/v1/tickets/{ticket['id']}/close")
    new_ticket(tenant.api, "eleven")
    later, after = read_feed(tenant.api, rare, types="ticket.closed")
    assert [(e["type"], e["data"]["ticket"]["title"]) for e in later] == [("ticket.closed", "ten")]
    assert _place(after) == _place(read_feed(tenant.api, everything)[1])
    # A page that does not hold every match keeps its place at its last match.
    page = tenant.api.get("/api/v1/events", query_string={"types": "ticket.created", "limit": 2}).get_json()
    assert page["next_cursor"] is not None and page["poll_cursor"] == page["next_cursor"]


def _place(cursor: str) -> str:
    """The position a cursor holds, without its signature (which also covers the cursor's `types`)."""
    return cursor.split(".")[0]


def test_a_cursor_goes_on_only_with_the_types_it_came_with(tenant):
    """A poll cursor of one type, passed with none, skipped every other event it had passed. A cursor of
    the whole feed (or one made before cursors carried their types) has passed nothing, so it takes any."""
    new_ticket(tenant.api, "before")
    _, closed_only = read_feed(tenant.api, types="ticket.closed")
    _, everything = read_feed(tenant.api)
    for types in (None, "ticket.created", "ticket.closed,ticket.created"):
        query = {"cursor": closed_only, **({"types": types} if types else {})}
        resp = tenant.api.get("/api/v1/events", query_string=query)
        assert resp.status_code == 422, (types, resp.get_json())
        assert resp.get_json()["errors"]["cursor"] == ["Not a valid cursor for these types: pass the types it was "
                                                       "given with."]
    for cursor, types in ((closed_only, "ticket.closed"), (everything, "ticket.closed"), (everything, None)):
        query = {"cursor": cursor, **({"types": types} if types else {})}
        resp = tenant.api.get("/api/v1/events", query_string=query)
        assert resp.status_code == 200, (types, resp.get_json())
    either_order = read_feed(tenant.api, types="ticket.created,ticket.closed")[1]
    assert tenant.api.get("/api/v1/events", query_string={
        "cursor": either_order, "types": "ticket.closed,ticket.created,ticket.closed"}).status_code == 200
    forged = tenant.api.get("/api/v1/events", query_string={"cursor": "WzEsMV0.forged", "types": "ticket.closed"})
    assert forged.status_code == 422 and "cursor" in forged.get_json()["errors"]


def test_requesters_may_not_read_the_feed_and_bad_queries_are_refused(tenant):
    requester = tenant.key_for(tenant.user("requester"))
    assert requester.get("/api/v1/events").status_code == 403
    assert tenant.api.get("/api/v1/events?types=ticket.exploded").status_code == 422
    assert tenant.api.get("/api/v1/events?cursor=forged").status_code == 422  # well formed, but not one we signed
    assert tenant.api.get("/api/v1/events?cursor=no%20spaces").status_code == 422
    assert tenant.api.get("/api/v1/events?since=yesterday").status_code == 422


def test_a_tenants_feed_never_holds_another_tenants_events(tenant, other_tenant):
    mine = new_ticket(tenant.api, "mine")
    theirs = new_ticket(other_tenant.api, "theirs")
    items, cursor = read_feed(tenant.api)
    assert [e["data"]["ticket"]["id"] for e in items] == [mine["id"]]
    other_items, _ = read_feed(other_tenant.api)
    assert [e["data"]["ticket"]["id"] for e in other_items] == [theirs["id"]]
    # A cursor is signed for its tenant: another tenant's cursor is refused, not read.
    assert other_tenant.api.get("/api/v1/events", query_string={"cursor": cursor}).status_code == 422


def test_the_feed_is_complete_and_ordered_while_events_are_written(app, tenant, in_tenant):
    """Writers commit out of id order (one holds its transaction open); a reader polling all along misses nothing.

    Ids are handed out when events are written, but transactions commit in their own order; a
    feed that paged by id alone would step past the slow writer's lower id for good.
    """
    writers, per_writer = 4, 15
    stop = threading.Event()
    seen: list[dict] = []
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(per_writer):
                new_ticket(tenant.api, f"w{n}-{i}")
        except BaseException as exc:
            errors.append(exc)

    def slow_write() -> None:
        """Take a transaction id early, then write and commit after others have committed later ids."""
        try:
            with app.app_context():
                conn = db.engine.connect()
                conn.execute(sa.text("select pg_current_xact_id()"))  # its transaction id comes first
                time.sleep(0.5)  # others write events meanwhile, with later transaction ids and event ids
                conn.execute(sa.text(f'insert into "{schema_for(tenant.slug)}".events (type, payload, data, txid) '
                                     "values ('ticket.updated', '{}', '{\"slow\": true}', "
                                     "pg_current_xact_id()::text::bigint)"))  # the tenant was never moved: offset 0
                time.sleep(1.0)
                conn.commit()
                conn.close()
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        cursor = None
        try:
            while not stop.is_set():
                items, cursor = read_feed(tenant.api, cursor)
                seen.extend(items)
                time.sleep(0.01)
            items, cursor = read_feed(tenant.api, cursor)
            seen.extend(items)
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=slow_write)] + [threading.Thread(target=write, args=(n,))
                                                       for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    reader.join()
    assert errors == []
    with in_tenant(tenant) as session:
        stored = session.execute(sa.select(Event.uid).where(Event.data.is_not(None))
                                 .order_by(Event.txid, Event.id)).scalars().all()
        by_id = session.execute(sa.select(Event.uid).where(Event.data.is_not(None))
                                .order_by(Event.id)).scalars().all()
    got = [uuid.UUID(e["id"]) for e in seen]
    assert len(got) == len(set(got)) == writers * per_writer + 1  # nothing twice, nothing missing
    assert got == list(stored)  # the feed's order is the stored order
    assert any(e["data"] == {"slow": True} for e in seen)
    assert list(stored) != list(by_id)  # and the slow writer did commit out of id order


def test_events_older_than_the_retention_are_purged_with_what_hangs_off_them(app, tenant, in_tenant):
    new_ticket(tenant.api, "old")
    new_ticket(tenant.api, "recent")
    with in_tenant(tenant) as session:
        session.execute(sa.text(f'update "{schema_for(tenant.slug)}".events set created_at = now() - interval '
                                "'31 days' where data->'ticket'->>'title' = 'old'"))
        session.execute(sa.text(f'update "{schema_for(tenant.slug)}".outbox set processed_at = now()'))
        session.commit()
        assert purge_events(tenant.slug) == 1
        titles = session.execute(sa.select(Event.data["ticket"]["title"].astext)
                                 .where(Event.data.is_not(None))).scalars().all()
        assert titles == ["recent"]
    items, _ = read_feed(tenant.api)
    assert [e["data"]["ticket"]["title"] for e in items] == ["recent"]


def test_an_old_event_whose_delivery_is_still_pending_is_kept(app, tenant, in_tenant):
    """The purge deleted a pending delivery with its event (a worker down, or the tenant suspended,
    for longer than the retention): never sent, never marked failed, gone from the delivery log."""
    subscribe_webhook(tenant, "https://hooks.example.com/crm")
    new_ticket(tenant.api, "old")
    with in_tenant(tenant) as session:
        schema = schema_for(tenant.slug)
        session.execute(sa.text(f'update "{schema}".events set created_at = now() - interval \'31 days\''))
        session.execute(sa.text(f'update "{schema}".outbox set processed_at = now()'))
        session.commit()
        assert purge_events(tenant.slug) == 0
        assert session.execute(sa.select(WebhookDelivery.state)).scalars().all() == ["pending"]
        session.execute(sa.update(WebhookDelivery).values(state="failed"))
        session.commit()
        assert purge_events(tenant.slug) == 1  # once it has ended, it goes with its event
        assert session.execute(sa.select(WebhookDelivery.state)).scalars().all() == []


def test_idempotency_keys_past_their_day_are_purged_with_the_events(app, tenant, in_tenant):
    """Kept responses were never deleted: every create sent with a key stayed in the table for good."""
    for title in ("old", "recent"):
        assert tenant.api.post("/api/v1/tickets", json={"title": title},
                               headers={"Idempotency-Key": f"key-{title}"}).status_code == 201
    with in_tenant(tenant) as session:
        session.execute(sa.update(IdempotencyRecord).where(IdempotencyRecord.key == "key-old")
                        .values(created_at=sa.func.now() - (RETENTION + timedelta(minutes=1))))
        session.commit()
    with app.app_context():
        assert purge_once() >= 1
    with in_tenant(tenant) as session:
        assert session.execute(sa.select(IdempotencyRecord.key)).scalars().all() == ["key-recent"]
    # the purged key is a new request again; the kept one still replays
    again = tenant.api.post("/api/v1/tickets", json={"title": "old"}, headers={"Idempotency-Key": "key-old"})
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    replayed = tenant.api.post("/api/v1/tickets", json={"title": "recent"}, headers={"Idempotency-Key": "key-recent"})
    assert replayed.headers["Idempotent-Replayed"] == "true"


def test_the_purge_keeps_a_key_a_claim_took_over_while_it_waited(app, tenant, in_tenant, services):
    """The DELETE re-checks a row a concurrent claim renewed: its own age condition, not only the subquery's."""
    import psycopg

    assert tenant.api.post("/api/v1/tickets", json={"title": "t"}, headers={"Idempotency-Key": "renewed"}).status_code \
        == 201
    with in_tenant(tenant) as session:
        session.execute(sa.update(IdempotencyRecord).values(created_at=sa.func.now() - timedelta(hours=25)))
        session.commit()
    schema = schema_for(tenant.slug)
    with psycopg.connect(services.database_url.replace("postgresql+psycopg://", "postgresql://")) as claimer:
        claimer.execute(f'update "{schema}".idempotency_keys set created_at = now() where key = %s', ("renewed",))
        purged: list[int] = []

        def purge() -> None:
            with in_tenant(tenant):
                purged.append(purge_expired())

        thread = threading.Thread(target=purge)
        thread.start()
        time.sleep(0.5)  # the purge now waits for the claimer's row lock
        claimer.commit()
        thread.join(10)
    assert purged == [0]
    with in_tenant(tenant) as session:
        assert session.execute(sa.select(IdempotencyRecord.key)).scalars().all() == ["renewed"]
