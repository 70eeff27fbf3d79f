"""Ask one question of many tenant schemas in a few queries, instead of a round trip per tenant.

The relay wants to know which of thousands of tenants have work waiting. One UNION ALL of small
`EXISTS` probes per chunk of schemas answers that; the schema and table names written into it are
checked here, so callers never build SQL names themselves.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import sqlalchemy as sa

from tenants.context import TenantRef
from tenants.database import db
from tenants.names import checked_schema

log = logging.getLogger(__name__)
_TABLE = re.compile(r"[a-z_][a-z0-9_]{0,62}", re.ASCII)


def tenants_having(tenants: list[TenantRef], table: str, condition: str, params: dict[str, Any] | None = None,
                   chunk: int = 200) -> list[TenantRef]:
    """Return the tenants whose `table` has a row where `condition` (SQL with bind parameters) holds.

    A chunk that cannot be read (a damaged or half-migrated schema) is returned whole, so the
    caller visits those tenants one by one and finds out which is at fault.
    """
    if _TABLE.fullmatch(table) is None:
        raise ValueError(f"not a table name: {table!r}")
    found: list[TenantRef] = []
    for start in range(0, len(tenants), chunk):
        part = tenants[start:start + chunk]
        probes = " union all ".join(
            f'select {i} where exists (select 1 from "{checked_schema(t.schema)}".{table} where {condition})'
            for i, t in enumerate(part))
        try:
            hits = db.session.execute(sa.text(probes), params or {}).scalars().all()
        except sa.exc.SQLAlchemyError as exc:
            log.warning("probe of %s failed, returning %d tenants to visit one by one: %s", table, len(part), exc)
            hits = range(len(part))
        db.session.rollback()
        found += [part[i] for i in hits]
    return found
