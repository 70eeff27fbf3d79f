"""Tenant slugs, schema names and shard names: the identifiers that reach SQL or routing, checked here.

A slug becomes a schema name (`tenant_<slug>`, hyphens as underscores), and a schema name is
written into SQL (`CREATE SCHEMA`, `schema_translate_map`). Both are matched whole, ASCII only
(`fullmatch` with `re.ASCII`): `$` alone lets a trailing newline through, and `\\w` or case
folding let Unicode lookalikes through, and either can make two spellings of one name. Every
function that builds or accepts a schema name checks it again, whatever checked it before, so
no single slip upstream can reach another tenant's schema.

A shard name picks the database a tenant's schema lives in; it comes from the environment
(`DATABASE_SHARDS`) and the registry, and is held to the same whole-ASCII rule. A schema being
moved off a shard is renamed to `moved_<tenant id hex>`, a name no slug can produce.
"""

from __future__ import annotations

import re

SLUG_RULE = r"[a-z][a-z0-9-]{1,39}"
# At most 63 bytes in all: PostgreSQL truncates longer names, which could make two names one.
SCHEMA_RULE = r"tenant_[a-z][a-z0-9_]{1,55}"
SHARD_RULE = r"[a-z][a-z0-9_]{0,31}"
MOVED_RULE = r"moved_[0-9a-f]{32}"
PRIMARY_SHARD = "primary"  # the database that holds the registry, and the tenants placed there
_SLUG = re.compile(SLUG_RULE, re.ASCII)
_SCHEMA = re.compile(SCHEMA_RULE, re.ASCII)
_SHARD = re.compile(SHARD_RULE, re.ASCII)
_MOVED = re.compile(MOVED_RULE, re.ASCII)
# A table or schema name read from the catalogue that the app writes into SQL text itself.
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}", re.ASCII)
RESERVED_SLUGS = frozenset({
    "www", "api", "admin", "public", "app", "static", "assets", "mail", "smtp", "ftp", "status",
    "help", "support", "docs", "blog", "signup", "login", "logout", "auth", "root", "system",
    "tenant", "tenants", "pg-catalog", "information-schema", "dashboard", "billing", "cdn", "media",
})
SLUG_HELP = "Must start with a lowercase letter, then 1-39 lowercase letters, digits or hyphens."


def is_slug(value: object) -> bool:
    """Tell whether `value` is a well-formed slug (reserved or not)."""
    return isinstance(value, str) and _SLUG.fullmatch(value) is not None


def slug_problem(value: object) -> str | None:
    """Return why `value` cannot be a new tenant's slug, or None if it can."""
    if not is_slug(value):
        return SLUG_HELP
    if value in RESERVED_SLUGS or value.startswith("pg-"):
        return "This name is reserved."
    if value[2:4] == "--":  # reserved in host names (RFC 5891); browsers show xn-- ones as lookalike Unicode
        return "A name may not have hyphens in its third and fourth characters."
    return None


def checked_schema(name: object) -> str:
    """Return `name` if it is a tenant schema name, else raise ValueError."""
    if not isinstance(name, str) or _SCHEMA.fullmatch(name) is None:
        raise ValueError(f"not a tenant schema name: {name!r}")
    return name


def schema_for(slug: str) -> str:
    """Return the schema of a tenant slug (slugs have no `_`, so this is one to one)."""
    if not is_slug(slug):
        raise ValueError(f"not a tenant slug: {slug!r}")
    return checked_schema("tenant_" + slug.replace("-", "_"))


def checked_shard(name: object) -> str:
    """Return `name` if it is a well-formed shard name, else raise ValueError."""
    if not isinstance(name, str) or _SHARD.fullmatch(name) is None:
        raise ValueError(f"not a shard name: {name!r}")
    return name


def moved_schema(tenant_id: str) -> str:
    """Return the name a tenant's schema takes on its old shard while a move finishes (see `tenants.moves`)."""
    name = "moved_" + str(tenant_id).replace("-", "")
    if _MOVED.fullmatch(name) is None:
        raise ValueError(f"not a tenant id: {tenant_id!r}")
    return name
