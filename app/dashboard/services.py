"""Figures at a glance for one tenant and period, each one aggregate query sized for 1,000,000 tickets.

Nothing loads tickets into Python: Postgres counts and takes percentiles, each query served by
an index (see migration t0007): open tickets by status and priority from a partial index on
open tickets; created and closed per day from the created_at and closed_at indexes (added up per
week or month for long periods); response and
resolution percentiles from indexes that carry the timestamps they subtract; agent load from
(assignee_id, status); the unassigned queue from its partial index; decisions per rule from
(created_at) on decisions. The answer is kept in Redis for `DASHBOARD_CACHE_SECONDS` per tenant
and period, so a dashboard left open costs one read; figures are at most that old.

Any two days at most a century apart make a period: `from` after `to` is an empty one (no days,
nothing counted in it), and a long one counts its flow per week or month, so the answer stays
small whatever is asked (at most 1,201 months; the page draws a column and a row for each).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import redis
import sqlalchemy as sa
from flask import current_app

from app.assignment.models import AssignmentDecision
from app.errors import Invalid
from app.extensions import db, redis_client
from app.people.models import STAFF_ROLES, User
from app.tenant_shares import TenantShare
from app.tickets.models import OPEN_STATUSES, PRIORITIES, Ticket
from tenants import current_tenant

log = logging.getLogger(__name__)
DEFAULT_DAYS = 30
WEEKLY_AFTER_DAYS = 92  # a longer period counts its flow per week
MONTHLY_AFTER_DAYS = 731  # and one longer than two years, per month
BUCKETS = ("day", "week", "month")
MAX_YEARS = 100


def earliest_start(end: date) -> date:
    """The first day a period ending on `end` may start on: the same day `MAX_YEARS` years before."""
    if end.year <= MAX_YEARS:
        return date.min
    try:
        return end.replace(year=end.year - MAX_YEARS)
    except ValueError:  # 29 February, in a year that has none
        return end.replace(year=end.year - MAX_YEARS, day=28)


@dataclass(frozen=True)
class Period:
    """Whole UTC days, from `start` to `end` inclusive; empty when `start` is after `end`."""

    start: date
    end: date

    @classmethod
    def of(cls, start: date | None, end: date | None, today: date) -> Period:
        """Return the period asked for (default: the 30 days to today); refuse one longer than a century."""
        end = end or today
        if start is None:
            start = date.min if (end - date.min).days < DEFAULT_DAYS - 1 else end - timedelta(days=DEFAULT_DAYS - 1)
        if start < earliest_start(end):
            raise Invalid.field("from", f"A period spans at most {MAX_YEARS} years.",
                                f"Choose a period of at most {MAX_YEARS} years.")
        return cls(start, end)

    @property
    def length(self) -> int:
        """Days in the period (0 when it is empty)."""
        return max((self.end - self.start).days + 1, 0)

    @property
    def bucket(self) -> str:
        """How `flow` counts: per day, per week (over 92 days) or per month (over two years)."""
        if self.length > MONTHLY_AFTER_DAYS:
            return "month"
        return "week" if self.length > WEEKLY_AFTER_DAYS else "day"

    def contains(self, column: sa.ColumnElement) -> sa.ColumnElement[bool]:
        """The condition that a timestamp falls in the period (never true for an empty one)."""
        if self.length == 0:
            return sa.false()
        since = datetime.combine(self.start, datetime.min.time()).replace(tzinfo=UTC)
        if self.end == date.max:  # the day after does not exist
            return column >= since
        until = datetime.combine(self.end + timedelta(days=1), datetime.min.time()).replace(tzinfo=UTC)
        return sa.and_(column >= since, column < until)

    def bucket_of(self, day: date) -> date:
        """The first day of the bucket holding `day`: the Monday of its week or the 1st of its month,
        but never before the period starts."""
        if self.bucket == "week":
            first = day - timedelta(days=day.weekday())
        elif self.bucket == "month":
            first = day.replace(day=1)
        else:
            first = day
        return max(first, self.start)

    def buckets(self) -> list[date]:
        """The first day of each bucket, in order (none for an empty period)."""
        if self.length == 0:
            return []
        kind = self.bucket
        if kind == "month":
            months = range(self.start.year * 12 + self.start.month - 1, self.end.year * 12 + self.end.month)
            return [self.start] + [date(m // 12, m % 12 + 1, 1) for m in months[1:]]
        if kind == "week":
            monday = self.start - timedelta(days=self.start.weekday())
            return [self.start] + [monday + timedelta(days=7 * i) for i in range(1, (self.end - monday).days // 7 + 1)]
        return [self.start + timedelta(days=i) for i in range(self.length)]


# Figures over years of tickets take seconds (their percentiles sort every ticket of the period),
# and each new period misses the cache.
COMPUTATIONS = TenantShare("dashboard computations", "DASHBOARD_CONCURRENCY_PER_TENANT")
# Requests waiting for a computation another request runs: each holds a thread (not a connection).
WAITERS = TenantShare("dashboard requests waiting for figures", "DASHBOARD_WAITERS_PER_TENANT")


def figures(period: Period) -> dict[str, Any]:
    """Return the dashboard's figures for the current tenant and `period` (cached briefly)."""
    return json.loads(figures_json(period))


def figures_json(period: Period) -> str:
    """Return the dashboard's figures as JSON, as they are cached (a long period's flow is long).

    With the cache on, a period is computed once at a time per organization across processes:
    whoever asks while it is being computed waits for the result (two admins opening the same
    long period no longer each sort every ticket of it, nor does the second take the share).
    """
    ttl = current_app.config["DASHBOARD_CACHE_SECONDS"]
    if ttl <= 0:
        return _compute(period)
    key = f"tms:{current_tenant().id}:dashboard:{period.start}:{period.end}"
    try:
        client = redis_client()
        cached = client.get(key)
        if cached is not None:
            return cached.decode() if isinstance(cached, bytes) else cached
        computing = client.lock(f"{key}:computing", timeout=COMPUTING_LEASE, blocking=False)
        if not computing.acquire():
            db.session.rollback()  # no database connection is held while waiting: others need the pool
            with WAITERS.hold(current_tenant().id):
                waited = _wait_for(client, key, computing.name)
            if waited is not None:
                return waited
            computing = None  # its computer failed or is slow: compute here, under the share
    except redis.RedisError as exc:
        log.info("dashboard cache unavailable: %s", exc)
        return _compute(period)
    try:
        result = _compute(period)
        try:
            client.set(key, result, ex=ttl)
        except redis.RedisError as exc:
            log.info("dashboard figures not cached: %s", exc)
        return result
    finally:
        if computing is not None:
            with contextlib.suppress(redis.RedisError):  # not ours any more after its lease: harmless
                computing.release()


COMPUTING_LEASE = 60  # seconds: longer than a computation, whose statements time out after DB_STATEMENT_TIMEOUT_MS


def _wait_for(client: redis.Redis, key: str, lock_name: str) -> str | None:
    """Wait for another request's figures under `key`; None once nobody computes them and none came."""
    deadline = time.monotonic() + COMPUTING_LEASE
    while time.monotonic() < deadline:
        time.sleep(0.05)
        # The lock first: figures are stored before it goes, so once it is gone they are there or never come.
        computing = client.exists(lock_name)
        cached = client.get(key)
        if cached is not None:
            return cached.decode() if isinstance(cached, bytes) else cached
        if not computing:
            return None
    return None


def _compute(period: Period) -> str:
    with COMPUTATIONS.hold(current_tenant().id):
        return json.dumps({
            "period": {"from": period.start.isoformat(), "to": period.end.isoformat(), "days": period.length},
            "computed_at": _now().isoformat(), "backlog": backlog(), "bucket": period.bucket, "flow": flow(period),
            "first_response": percentiles(Ticket.first_response_at, Ticket.created_at, period),
            "resolution": percentiles(Ticket.resolved_at, Ticket.resolved_at, period),
            "agents": agent_load(), "unassigned": unassigned(), "rules": decisions_by_rule(period)}, default=str)


def _now() -> datetime:
    return db.session.execute(sa.select(sa.func.now())).scalar_one()


def backlog() -> dict[str, Any]:
    """Return open tickets (new, open, pending) counted by status and by priority."""
    rows = db.session.execute(
        sa.select(Ticket.status, Ticket.priority, sa.func.count())
        .where(Ticket.status.in_(OPEN_STATUSES)).group_by(Ticket.status, Ticket.priority)).all()
    by_status = dict.fromkeys(OPEN_STATUSES, 0)
    by_priority = dict.fromkeys(PRIORITIES, 0)
    for status, priority, count in rows:
        by_status[status] += count
        by_priority[priority] += count
    return {"total": sum(by_status.values()), "by_status": by_status, "by_priority": by_priority}


def flow(period: Period) -> list[dict[str, Any]]:
    """Return tickets created and closed in each bucket of the period (UTC), zeros included.

    Postgres counts per day, only the days that have tickets; the days are then added up into
    the period's buckets, so a long period costs no more than the tickets in it.
    """
    def per_bucket(column: sa.ColumnElement) -> dict[date, int]:
        day = sa.cast(sa.func.timezone("UTC", column), sa.Date)
        counts: dict[date, int] = {}
        for d, n in db.session.execute(sa.select(day, sa.func.count()).where(period.contains(column)).group_by(day)):
            first = period.bucket_of(d)
            counts[first] = counts.get(first, 0) + n
        return counts

    if period.length == 0:
        return []
    created, closed = per_bucket(Ticket.created_at), per_bucket(Ticket.closed_at)
    return [{"day": d.isoformat(), "created": created.get(d, 0), "closed": closed.get(d, 0)}
            for d in period.buckets()]


def percentiles(ends_at: sa.ColumnElement, in_period: sa.ColumnElement, period: Period) -> dict[str, Any]:
    """Return the median and p90, in seconds, from creation to `ends_at`, for tickets whose
    `in_period` timestamp falls in the period (creation for first response, resolution for
    resolution time), and how many there were."""
    seconds = sa.extract("epoch", ends_at - Ticket.created_at)
    row = db.session.execute(
        sa.select(sa.func.count(), sa.func.percentile_cont(0.5).within_group(seconds),
                  sa.func.percentile_cont(0.9).within_group(seconds))
        .where(period.contains(in_period), ends_at.is_not(None))).one()
    return {"count": row[0], "median_seconds": _whole(row[1]), "p90_seconds": _whole(row[2])}


def _whole(value: float | None) -> int | None:
    return None if value is None else round(value)


def agent_load() -> list[dict[str, Any]]:
    """Return each active agent's and admin's open tickets beside their capacity, busiest first."""
    load = (sa.select(Ticket.assignee_id, sa.func.count().label("open_tickets"))
            .where(Ticket.status.in_(OPEN_STATUSES), Ticket.assignee_id.is_not(None))
            .group_by(Ticket.assignee_id).subquery())
    rows = db.session.execute(
        sa.select(User.id, User.name, User.role, User.capacity, User.available,
                  sa.func.coalesce(load.c.open_tickets, 0))
        .outerjoin(load, load.c.assignee_id == User.id)
        .where(User.role.in_(STAFF_ROLES), User.deleted_at.is_(None))
        .order_by(sa.func.coalesce(load.c.open_tickets, 0).desc(), User.name)).all()
    return [{"user_id": r[0], "name": r[1], "role": r[2], "capacity": r[3], "available": r[4],
             "open_tickets": r[5]} for r in rows]


def unassigned() -> dict[str, Any]:
    """Return the size of the unassigned queue and when its oldest ticket was opened.

    The queue the figure links to (`tickets.queues.queue_scope`): unsolved and nobody's, a pending
    ticket whose agent left included, not only the new ones assignment has yet to hand out.
    """
    count, oldest = db.session.execute(
        sa.select(sa.func.count(), sa.func.min(Ticket.created_at))
        .where(Ticket.status.in_(OPEN_STATUSES), Ticket.assignee_id.is_(None))).one()
    return {"count": count, "oldest_created_at": oldest.isoformat() if oldest is not None else None}


def decisions_by_rule(period: Period) -> list[dict[str, Any]]:
    """Return the automatic decisions of the period per rule: how many assigned, how many left waiting."""
    assigned = sa.func.count().filter(AssignmentDecision.chosen_user_id.is_not(None))
    rows = db.session.execute(
        sa.select(AssignmentDecision.rule_id, AssignmentDecision.rule_name, assigned, sa.func.count())
        .where(AssignmentDecision.source == "auto", period.contains(AssignmentDecision.created_at))
        .group_by(AssignmentDecision.rule_id, AssignmentDecision.rule_name)
        .order_by(sa.func.count().desc())).all()
    return [{"rule_id": r[0], "rule_name": r[1] or "No rule matched", "assigned": r[2], "waiting": r[3] - r[2]}
            for r in rows]
