"""Shards: the databases tenant schemas live in, how they are configured, and where a new tenant goes.

The primary database holds the registry and may hold tenants too; `DATABASE_SHARDS` names more
databases (`name=url`, separated by spaces). The app makes one engine per shard (Flask-SQLAlchemy
binds, keyed by the shard name), and `tenants.database.engine_for` picks one per tenant. A new
tenant goes to the shard with the most room: its capacity (`SHARD_MAX_TENANTS`, one number for
every shard or `name=count` pairs) less the tenants the registry already places there. Tenant
count is the measure because what grows with it, the catalogue and every connection's caches of
it, is what limits a PostgreSQL server holding thousands of schemas.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from tenants.database import db, shard_engine
from tenants.models import Tenant
from tenants.names import PRIMARY_SHARD, checked_shard


class NoRoom(Exception):
    """Every shard holds as many tenants as it may."""


def parse_shards(text: str) -> dict[str, str]:
    """Return {shard: database URL} from `DATABASE_SHARDS` ("name=url name=url"); ValueError if malformed."""
    shards: dict[str, str] = {}
    for entry in text.split():
        name, sep, url = entry.partition("=")
        if not sep or not url:
            raise ValueError(f"DATABASE_SHARDS entry {entry!r} is not name=url")
        if checked_shard(name) == PRIMARY_SHARD or name in shards:
            raise ValueError(f"DATABASE_SHARDS names shard {name!r} twice (the primary is DATABASE_URL)")
        shards[name] = url
    return shards


def parse_capacities(text: str) -> tuple[int, dict[str, int]]:
    """Return (default, {shard: capacity}) from `SHARD_MAX_TENANTS` ("10000" or "primary=2000 b=20000 8000")."""
    default, per_shard = 10_000, {}
    for entry in text.split():
        name, sep, count = entry.rpartition("=")
        if not count.isascii() or not count.isdigit():
            raise ValueError(f"SHARD_MAX_TENANTS entry {entry!r} is not a count or name=count")
        if sep:
            per_shard[checked_shard(name)] = int(count)
        else:
            default = int(count)
    return default, per_shard


def check_shards(primary_url: str, shards: dict[str, str], capacities: str) -> None:
    """Refuse, at start, shards that are one database under two names, and capacities of unknown shards.

    Two names for one database would make it look as if a tenant's schema were on both, and a
    move cleans a schema off every shard but the one it lives on: it would drop the live one.
    """
    seen: dict[tuple, str] = {}
    for name, url in {PRIMARY_SHARD: primary_url, **shards}.items():
        parsed = sa.engine.make_url(url)
        where = (parsed.host or parsed.query.get("host") or "localhost", parsed.port or 5432, parsed.database)
        if where in seen:
            raise ValueError(f"shards {seen[where]!r} and {name!r} are the same database; each shard needs its own")
        seen[where] = name
    unknown = sorted(set(parse_capacities(capacities)[1]) - {PRIMARY_SHARD, *shards})
    if unknown:
        raise ValueError(f"SHARD_MAX_TENANTS names shards that are not configured: {', '.join(unknown)}")


def shard_names() -> list[str]:
    """Return every shard this app has a database for, the primary first."""
    return [PRIMARY_SHARD, *(key for key in db.engines if key is not None)]


def shard_engines() -> dict[str, sa.Engine]:
    """Return the engine of every shard by name, the primary first (for work done on each database)."""
    return {name: shard_engine(name) for name in shard_names()}


@dataclass(frozen=True)
class ShardLoad:
    name: str
    tenants: int
    capacity: int

    @property
    def room(self) -> int:
        return self.capacity - self.tenants


def shard_loads() -> list[ShardLoad]:
    """Return each shard's tenants and capacity, in configuration order (shards the registry names too)."""
    counts = dict(db.session.execute(sa.select(Tenant.shard, sa.func.count()).group_by(Tenant.shard)).all())
    default, per_shard = parse_capacities(current_app.config["SHARD_MAX_TENANTS"])
    names = shard_names() + sorted(set(counts) - set(shard_names()))
    return [ShardLoad(n, counts.get(n, 0), per_shard.get(n, default) if n in db.engines or n == PRIMARY_SHARD
                      else 0) for n in names]


def roomiest_shard() -> str:
    """Return the shard a new tenant goes to: the most room left, the earliest configured on a tie.

    With no shard configured every tenant goes to the primary, whatever its count.
    """
    if len(db.engines) == 1:
        return PRIMARY_SHARD
    loads = [load for load in shard_loads() if load.capacity > 0]
    best = max(loads, key=lambda load: load.room, default=None)
    if best is None or best.room <= 0:
        raise NoRoom("every shard is full; add one to DATABASE_SHARDS or raise SHARD_MAX_TENANTS")
    return best.name
