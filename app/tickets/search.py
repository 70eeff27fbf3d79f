"""Full-text search over tickets and their messages, with a plan chosen by how many rows match.

Both tables keep a stored `tsvector` with a GIN index. One query shape cannot serve every term:
on a million tickets, reading a GIN posting list of a common term costs 20-40 ms before the
first row (and ranking all its matches far more), while walking the date index for a term that
matches nothing reads the whole table. Planner estimates do not tell the two apart (phrases and
correlated words are estimated as if independent), so the first page probes instead:

1. count the matches up to `RANK_UP_TO` (`few_matches`; a staff search remembers a common term
   a minute, so the posting lists of a common term are read once a minute, not on every search):
   that few are all ranked for `sort=relevance` (the pages' search boxes), or sorted in the
   requested order. A requester's search in date order skips this count: their own tickets are
   few, and the next step reads them by index;
2. walk the newest `WALK_WINDOW` tickets in the requested order (an index scan, stopped early):
   if a whole page matches there, the term is common; that page is the answer, in date (or
   requested) order, and later pages keep walking the index. With a filter no index keeps in
   that order, this walk reads many rows, which is why a rare term never gets here;
3. otherwise the matches are sorted in the requested order (newest first for relevance).

The response says which order it used. The plan travels in the cursor, so every page of one
listing uses the same plan, and a statement timeout bounds any surprise.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import REGCONFIG

from app.conversation.models import Message
from app.tickets.common_values import CommonValues
from app.tickets.models import Ticket

RANK_UP_TO = 2000
WALK_WINDOW = 10000
MESSAGE_WEIGHT = 0.5
RANK_SCALE = 1_000_000_000  # ranks become integers so they fit a keyset cursor exactly
COMMON_TERMS = CommonValues()

_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_WORD = re.compile(r"[^\W_]+")


def _lexemes(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def to_tsquery_text(q: str) -> str | None:
    """Translate a search box string into `to_tsquery` syntax built only from word characters.

    Words are ANDed; `"a phrase"` matches adjacent words; `word*` matches a prefix; `-word`
    excludes; `OR` between two terms matches either. Nothing the user types reaches the tsquery
    parser unescaped, so no input can make it fail.
    """
    terms: list[str] = []
    pending_or = False
    for negate, phrase, word in _TOKEN.findall(q):
        if word:
            if word == "OR" and terms:
                pending_or = True
                continue
            negate = "-" if word.startswith("-") else ""
            prefix = word.endswith("*")
            parts = _lexemes(word)
            if not parts:
                continue
            term = " <-> ".join(parts) + (":*" if prefix else "")
        else:
            parts = _lexemes(phrase)
            if not parts:
                continue
            term = " <-> ".join(parts)
        term = f"({term})" if len(parts) > 1 else term
        if negate:
            term = f"!{term}"
        if pending_or and terms:
            terms[-1] = f"({terms[-1]} | {term})"
        else:
            terms.append(term)
        pending_or = False
    positive = [t for t in terms if not t.startswith("!")]
    return " & ".join(terms) if positive else None


def searchable(session, q: str) -> str | None:
    """Return the query text to search for `q`, or None when nothing can match (no word, or a contradiction)."""
    text = to_tsquery_text(q)
    return None if text is None or contradicts(session, text) else text


def contradicts(session, text: str) -> bool:
    """Tell whether translated query text holds a term and its own negation, as Postgres reads them.

    Such a query matches nothing, yet `c* -c*` made Postgres read and recheck every row of both
    tables. Terms are compared once stemmed (`cat* -cats*` is `'cat':*` twice); a stop word
    (`the -the printer`) is no term at all. One round trip, only for a query with a negation.
    """
    terms = text.split(" & ")  # the top level only: groups join their parts with `|` and `<->`
    negated = [t[1:] for t in terms if t.startswith("!")]
    if not negated:
        return False
    positive = [t for t in terms if not t.startswith("!")]
    forms = session.execute(
        sa.text("SELECT to_tsquery('english', term)::text FROM unnest(CAST(:terms AS text[])) "
                "WITH ORDINALITY AS t(term, n) ORDER BY n"), {"terms": positive + negated}).scalars().all()
    kept = {form for form in forms[:len(positive)] if form}
    return any(form in kept for form in forms[len(positive):] if form)


def tsquery(text: str) -> sa.ColumnElement:
    """Return the English tsquery for already translated query text."""
    return sa.func.to_tsquery(sa.cast("english", REGCONFIG), text)


def message_hits(query: sa.ColumnElement, with_internal: bool,
                 visible: sa.ColumnElement[bool] | None = None) -> sa.Select:
    """Return a select of (ticket_id, rank) for visible messages matching `query`.

    `visible`, a condition on tickets (a requester's own), is applied here, so a requester's search
    reads the matches of their tickets, not of the whole organization's.
    """
    stmt = sa.select(Message.ticket_id.label("ticket_id"),
                     (sa.func.ts_rank(Message.search_vector, query, 1) * MESSAGE_WEIGHT).label("rank"))
    stmt = stmt.where(Message.search_vector.op("@@")(query), Message.deleted_at.is_(None))
    if not with_internal:
        stmt = stmt.where(Message.internal.is_(False))
    if visible is not None:
        stmt = stmt.join(Ticket, Ticket.id == Message.ticket_id).where(visible)
    return stmt


def ticket_hits(query: sa.ColumnElement, visible: sa.ColumnElement[bool] | None = None) -> sa.Select:
    """Return a select of (ticket_id, rank) for tickets (`visible` ones) whose title or description match."""
    stmt = sa.select(Ticket.id.label("ticket_id"), sa.func.ts_rank(Ticket.search_vector, query, 1).label("rank")) \
        .where(Ticket.search_vector.op("@@")(query))
    return stmt if visible is None else stmt.where(visible)


def matching_ids(query: sa.ColumnElement, with_internal: bool,
                 visible: sa.ColumnElement[bool] | None = None) -> sa.CompoundSelect:
    """Return the ids of the (`visible`) tickets that match or have a visible message that matches.

    Read from both text indexes at once: the condition for a query that must find every match
    (`matches` checks one row at a time, for walking a few rows in order).
    """
    return sa.union(ticket_hits(query, visible).with_only_columns(Ticket.id),
                    message_hits(query, with_internal, visible).with_only_columns(Message.ticket_id))


def matches(query: sa.ColumnElement, with_internal: bool, tickets=Ticket) -> sa.ColumnElement[bool]:
    """Return the per-row condition 'this ticket or one of its visible messages matches'."""
    msg = sa.select(Message.id).where(Message.ticket_id == tickets.id, Message.search_vector.op("@@")(query),
                                      Message.deleted_at.is_(None))
    if not with_internal:
        msg = msg.where(Message.internal.is_(False))
    return sa.or_(tickets.search_vector.op("@@")(query), msg.exists())


def count_matches_up_to(session, query: sa.ColumnElement, with_internal: bool, limit: int,
                        visible: sa.ColumnElement[bool] | None = None) -> int:
    """Return how many rows match (tickets plus messages), counting no further than `limit`.

    With `visible` (a condition on tickets), only the caller's tickets and their messages count:
    the count picks the plan the response names in `order`, so counting others' tickets would
    tell a requester whether they match.
    """
    tickets = ticket_hits(query, visible).with_only_columns(Ticket.id)
    messages = message_hits(query, with_internal, visible).with_only_columns(Message.ticket_id)
    hits = sa.union_all(tickets, messages).limit(limit).subquery()
    return session.execute(sa.select(sa.func.count()).select_from(hits)).scalar_one()


def few_matches(session, text: str, query: sa.ColumnElement, with_internal: bool,
                visible: sa.ColumnElement[bool] | None = None) -> bool:
    """Tell whether at most `RANK_UP_TO` rows match translated query `text` (tickets plus messages).

    Staff searches (no `visible`) remember a common term a minute (`COMMON_TERMS`): its count reads
    the term's whole posting lists (30 ms for `printer` on a sixth of a million tickets). A
    requester's count covers only their own tickets, so it is made each time and never kept.
    """
    if visible is None and COMMON_TERMS.known(text):
        return False
    if count_matches_up_to(session, query, with_internal, RANK_UP_TO + 1, visible) <= RANK_UP_TO:
        return True
    if visible is None:
        COMMON_TERMS.remember(text)
    return False


def candidates(query: sa.ColumnElement, with_internal: bool,
               visible: sa.ColumnElement[bool] | None = None) -> sa.Subquery:
    """Return a subquery of each matching (`visible`) ticket's id with its best rank, scaled to an integer."""
    hits = sa.union_all(ticket_hits(query, visible), message_hits(query, with_internal, visible)).subquery("hits")
    return sa.select(hits.c.ticket_id,
                     sa.cast(sa.func.max(hits.c.rank) * RANK_SCALE, sa.BigInteger).label("rank")) \
        .group_by(hits.c.ticket_id).subquery("candidates")
