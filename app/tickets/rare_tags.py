"""Tags on few tickets, which Postgres misjudges: their pages are read from the tag's index and sorted.

Postgres estimates a tag missing from its statistics at a share of all tickets, so a page walks
the sort's index and drops every ticket without the tag: a tag on 40 tickets of a million took
0.4 to 1.3 s, and a search (`q`) within it about a second. A probe counts the tag's tickets up to
`RARE_TAG`; fewer than that are fetched first from the tag's GIN index (a MATERIALIZED CTE, which
the planner cannot see through) and sorted, whatever the other filters and the sort. Staff only:
the count covers the whole tenant, so a requester's plan (it travels in a search's cursor) would
tell them how many tickets they cannot see carry a tag; their own tickets bound their pages anyway.

Counting a common tag's tickets up to the cap builds its whole bitmap, so each process keeps
that answer a minute (`CommonValues`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import array

from app.tickets.common_values import CommonValues
from app.tickets.models import Ticket

RARE_TAG = 2000
TAGGED = Ticket.tags.contains(array([sa.bindparam("tag", type_=sa.String(64))]))  # the `tag` filter
TAGGED_UP_TO = sa.select(sa.func.count()).select_from(
    sa.select(sa.literal(1)).where(TAGGED).limit(sa.bindparam("cap", type_=sa.Integer)).subquery())
COMMON = CommonValues()


def is_rare(tag: str, count_up_to: Callable[[dict[str, object]], int]) -> bool:
    """Tell whether fewer than `RARE_TAG` of the tenant's tickets carry `tag` (a common one as counted within a minute).

    `count_up_to` runs `TAGGED_UP_TO` with the parameters given and returns the count.
    """
    if COMMON.known(tag):
        return False
    if count_up_to({"tag": tag, "cap": RARE_TAG}) < RARE_TAG:
        return True
    COMMON.remember(tag)
    return False


def tagged_tickets(columns: Sequence[sa.ColumnElement], tag: str | None = None) -> sa.CTE:
    """Return the MATERIALIZED CTE of `columns` of the tickets carrying the tag (bound here, or as parameter `tag`)."""
    condition = TAGGED if tag is None else TAGGED.params(tag=tag)
    return sa.select(*columns).where(condition).cte("tagged").prefix_with("MATERIALIZED")
