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
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TSQUERY

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
# Each term as Postgres reads the stored text: a word or phrase by its own parser (an address, a host,
# a version or a file name is one term there), a prefix from its words; lowercased and stemmed by it.
_NORMALIZE = sa.text(
    "SELECT CASE WHEN prefix THEN to_tsquery('english', term) ELSE phraseto_tsquery('english', term) END::text "
    "FROM unnest(CAST(:terms AS text[]), CAST(:prefixes AS boolean[])) WITH ORDINALITY AS t(term, prefix, n) "
    "ORDER BY n")


@dataclass(frozen=True)
class Term:
    """One term of a search box string: its text, and whether it is a prefix, excluded, or ORed with the last."""

    text: str
    prefix: bool = False
    negated: bool = False
    either: bool = False


def parse(q: str) -> list[Term]:
    """Split a search box string into terms: words are ANDed; `"a phrase"` matches adjacent words; `word*`
    matches a prefix; `-word` excludes; `OR` between two terms matches either.

    A prefix keeps only its words, joined in tsquery syntax; any other term is plain text, which
    Postgres parses as text (`phraseto_tsquery`), so nothing typed reaches the tsquery parser.
    """
    terms: list[Term] = []
    either = False
    for negate, phrase, word in _TOKEN.findall(q):
        if word == "OR" and terms:
            either = True
            continue
        if word:
            negate = "-" if word.startswith("-") else ""
            text = word[1:] if negate else word
            prefix = text.endswith("*")
            if prefix:
                parts = _WORD.findall(text)
                text = " <-> ".join(parts) + ":*" if parts else ""
        else:
            text, prefix = phrase, False
        if not _WORD.search(text):
            continue
        terms.append(Term(text, prefix, bool(negate), either and bool(terms)))
        either = False
    return terms


def compose(terms: list[Term], forms: list[str]) -> str | None:
    """Join the terms' normalized forms (`forms`, in order) into tsquery text, or None when nothing can
    match: no term left that a row must hold (a stop word is no term), or a term every row that holds
    it is excluded by another (`c* -c*`, `cat* -cats*` once stemmed, `printer* -print*`).

    Such a query matches nothing, yet Postgres reads and rechecks every row of both tables for it.
    """
    groups: list[tuple[bool, list[str]]] = []  # (negated, forms ORed), ANDed
    for term, form in zip(terms, forms, strict=True):
        if not form:
            continue
        form = f"( {form} )" if " " in form else form
        if term.either and groups and not groups[-1][0] and not term.negated:
            groups[-1][1].append(form)
        else:
            groups.append((term.negated, [form]))
    positive = [forms for negated, forms in groups if not negated]
    excluded = [forms[0] for negated, forms in groups if negated]
    if not positive or any(all(_excludes(n, form) for form in forms) for forms in positive for n in excluded):
        return None
    return " & ".join(f"!{forms[0]}" if negated else forms[0] if len(forms) == 1 else f"( {' | '.join(forms)} )"
                      for negated, forms in groups)


_LEXEME = re.compile(r"'((?:[^']|'')*)'(:\*)?")


def _excludes(negated: str, form: str) -> bool:
    """Tell whether every row matching `form` (one lexeme, or a prefix) is excluded by `negated`."""
    if negated == form:
        return True
    excluding, matched = _LEXEME.fullmatch(negated), _LEXEME.fullmatch(form)
    return bool(excluding and matched and excluding.group(2) and matched.group(1).startswith(excluding.group(1)))


def searchable(session, q: str) -> str | None:
    """Return the query text (tsquery syntax) to search for `q`, or None when nothing can match."""
    terms = parse(q)
    if not terms:
        return None
    forms = session.execute(_NORMALIZE, {"terms": [t.text for t in terms],
                                         "prefixes": [t.prefix for t in terms]}).scalars().all()
    return compose(terms, forms)


def tsquery(text: str) -> sa.ColumnElement:
    """Return the tsquery of query text `searchable` made (normalized already: read as it is)."""
    return sa.cast(text, TSQUERY)


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
