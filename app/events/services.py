"""The event feed: every public event of a tenant, in one order that never skips an event.

Events are numbered as they are written, but transactions commit in their own order: an event
numbered 41 may commit after 42 was read, and a reader that only asked for "after 42" would
never see it. So the feed is ordered by the id of the writing transaction, then the event id,
and serves only events of transactions older than every transaction still running
(`pg_snapshot_xmin`): all of those have finished, so nothing can later appear before a point a
reader has passed. A new event waits at most as long as the longest transaction running when
it committed. Reads go through the partial index `ix_events_feed (txid, id)`. Both sides add the
tenant's transaction id offset, which a move between databases raises so the order goes on.
"""

from __future__ import annotations

import contextlib
from typing import Any

import sqlalchemy as sa

from app.errors import Invalid
from app.extensions import db
from app.outbox.models import Event
from app.pagination import SortKey, decode_cursor, encode_cursor
from tenants import current_tenant

KEYS = [SortKey(Event.txid, kind="int"), SortKey(Event.id, kind="int")]
PURPOSE = "events"
# Every transaction with an id below this has finished (committed or rolled back).
HORIZON = sa.cast(sa.cast(sa.func.pg_snapshot_xmin(sa.func.pg_current_snapshot()), sa.Text), sa.BigInteger)


def feed(types: list[str] | None, limit: int, cursor: str | None) -> dict[str, Any]:
    """Return a page of public events after `cursor`, oldest first, with the cursors to go on from.

    With `types`, a page that holds every match left also moves the poll cursor past the events of
    other types it read: a poll for a rare type read every event since its last match, each time.
    The newest event is found in the same statement, so nothing newer can be passed unread. So a
    cursor made with `types` goes on only with the same types (422 with others, or none): a poll
    cursor of `ticket.closed` passed without it would skip every other event it had passed.
    """
    position = _position(cursor, types) if cursor else [0, 0]
    purpose = _purpose(types)
    readable = [Event.data.is_not(None), Event.txid < HORIZON + current_tenant().txid_offset,
                sa.tuple_(Event.txid, Event.id) > sa.tuple_(sa.literal(position[0]), sa.literal(position[1]))]
    columns = (Event.uid, Event.type, Event.created_at, Event.data, Event.txid, Event.id)
    if not types:
        rows = db.session.execute(sa.select(*columns).where(*readable)
                                  .order_by(Event.txid, Event.id).limit(limit + 1)).all()
        newest = None
    else:
        last = (sa.select(Event.txid, Event.id).where(*readable)
                .order_by(Event.txid.desc(), Event.id.desc()).limit(1).subquery("newest"))
        matches = (sa.select(*columns).where(*readable, Event.type.in_(types),
                                             sa.tuple_(Event.txid, Event.id) <= sa.tuple_(last.c.txid, last.c.id))
                   .order_by(Event.txid, Event.id).limit(limit + 1).lateral("matches"))
        found = db.session.execute(
            sa.select(last.c.txid.label("newest_txid"), last.c.id.label("newest_id"), *matches.c)
            .select_from(last.outerjoin(matches, sa.true())).order_by(matches.c.txid, matches.c.id)).all()
        rows = [row for row in found if row.uid is not None]
        newest = [found[0].newest_txid, found[0].newest_id] if found else None
    more = len(rows) > limit
    rows = rows[:limit]
    if rows:
        position = [rows[-1].txid, rows[-1].id]
    if newest is not None and not more:  # every match up to the newest event was read
        position = newest
    reached = encode_cursor(position, KEYS, purpose)
    return {"items": [{"id": r.uid, "type": r.type, "created_at": r.created_at, "data": r.data} for r in rows],
            "next_cursor": reached if more else None, "poll_cursor": reached}


def _purpose(types: list[str] | None) -> str:
    return f"{PURPOSE}:{','.join(sorted(set(types)))}" if types else PURPOSE


def _position(cursor: str, types: list[str] | None) -> list[Any]:
    """Read a feed cursor made with these `types`, or with none: a cursor of the whole feed has passed
    nothing a filter leaves out (and cursors made before they carried their types look the same)."""
    for purpose in dict.fromkeys((_purpose(types), PURPOSE)):
        with contextlib.suppress(Invalid):
            return decode_cursor(cursor, KEYS, purpose)
    raise Invalid.field("cursor", "Not a valid cursor for these types: pass the types it was given with.",
                        "The cursor is not valid.")
