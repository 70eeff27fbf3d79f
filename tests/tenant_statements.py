"""The check that no statement names two tenant schemas, for every engine of the test process.

A tenant's schema may sit on another shard, or on another Citus node (README, "Running at
scale"), so a statement spanning two tenants would break there even where it works on one
server. conftest.py turns the check on for the whole run and fails any test that tripped it,
even where the app turned the failure into a 500.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

TENANT_SCHEMA_NAME = re.compile(r'(?<![a-z0-9_])"?(tenant_[a-z0-9_]+)"?\s*\.')
CROSSINGS: list[str] = []


class StatementSpansTenants(AssertionError):
    """A statement named two tenant schemas."""


def one_tenant_per_statement(_conn, _cursor, statement, _parameters, _context, _executemany) -> None:
    schemas = set(TENANT_SCHEMA_NAME.findall(statement))
    if len(schemas) > 1:
        CROSSINGS.append(f"{sorted(schemas)}: {statement[:300]}")
        raise StatementSpansTenants(f"one statement names tenant schemas {sorted(schemas)}")


def watch_every_engine() -> None:
    """Run the check before every statement of every engine in this process."""
    if not sa.event.contains(sa.Engine, "before_cursor_execute", one_tenant_per_statement):
        sa.event.listen(sa.Engine, "before_cursor_execute", one_tenant_per_statement)


def crossings_since_last_call() -> list[str]:
    """Return the statements that spanned tenants since the last call, and forget them."""
    found, CROSSINGS[:] = CROSSINGS[:], []
    return found
