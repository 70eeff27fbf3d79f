"""The dashboard's charts, drawn as SVG on the server: geometry here, markup in templates/admin/charts.html.

No chart library and no script: the page is complete as served, prints, works with the CSP, and
reads the same in dark mode (colours come from the stylesheet's classes). Each chart carries a
title and a summary for screen readers, a table of its numbers, and links: a day's column opens
the tickets created that day, an agent's bar that agent's open tickets.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 14, 30
LABELS = 7  # at most this many dates under the time axis


def nice_ceiling(value: float) -> int:
    """Return a round number at or above `value` for an axis (1, 2, 5, 10, 20, 50 ...)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return int(step * power)
    return int(10 * power)


@dataclass
class Column:
    x: float
    width: float
    href: str
    label: str


@dataclass
class FlowChart:
    width: int
    height: int
    plot: dict[str, float]
    created: list[tuple[float, float, int]]
    closed: list[tuple[float, float, int]]
    columns: list[Column]
    x_labels: list[tuple[float, str]]
    y_ticks: list[tuple[float, int]]
    summary: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @staticmethod
    def points(series: list[tuple[float, float, int]]) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in series)


def _day_label(day: date, bucket: str) -> str:
    if bucket == "month":
        return day.strftime("%b %Y")
    return f"{day.strftime('%b')} {day.day}"


def bucket_days(day: date, bucket: str, last: date) -> tuple[date, date | None]:
    """Return the last day of the bucket that starts on `day` (a week, a month, or the day itself), cut at
    `last`, and the day after it: None when that would be past the last day a date can have.
    """
    if bucket == "week":
        length = 6 - day.weekday()
    elif bucket == "month":
        length = calendar.monthrange(day.year, day.month)[1] - day.day
    else:
        length = 0
    final = day + timedelta(days=min(length, (last - day).days))
    return final, None if final == date.max else final + timedelta(days=1)


def flow_chart(flow: list[dict[str, Any]], bucket: str, last_day: date,
               link: Callable[[date, date | None], str]) -> FlowChart:
    """Lay out tickets created against closed per day (or week, month) as two lines over clickable columns."""
    plot = {"x": LEFT, "y": TOP, "w": WIDTH - LEFT - RIGHT, "h": HEIGHT - TOP - BOTTOM}
    n = max(len(flow), 1)
    top = nice_ceiling(max([1] + [max(r["created"], r["closed"]) for r in flow]))
    step = plot["w"] / n

    def y_of(value: int) -> float:
        return plot["y"] + plot["h"] - plot["h"] * value / top

    created, closed, columns, rows = [], [], [], []
    every = max(1, math.ceil(n / LABELS))
    x_labels = []
    for i, row in enumerate(flow):
        day = date.fromisoformat(row["day"])
        final, after = bucket_days(day, bucket, last_day)
        x = plot["x"] + step * (i + 0.5)
        created.append((x, y_of(row["created"]), row["created"]))
        closed.append((x, y_of(row["closed"]), row["closed"]))
        span = _day_label(day, bucket) if bucket == "day" else f"{_day_label(day, bucket)} to " \
            f"{_day_label(final, 'day')}"
        label = f"{span}: {row['created']} created, {row['closed']} closed"
        columns.append(Column(plot["x"] + step * i, step, link(day, after), label))
        rows.append({"span": span, "created": row["created"], "closed": row["closed"], "href": link(day, after)})
        if i % every == 0:
            x_labels.append((x, _day_label(day, bucket)))
    y_ticks = [(y_of(v), v) for v in sorted({0, top // 2, top})]
    total_created = sum(r["created"] for r in flow)
    total_closed = sum(r["closed"] for r in flow)
    per = {"day": "per day", "week": "per week", "month": "per month"}.get(bucket, "per day")
    summary = (f"Tickets created and closed {per}, {len(flow)} points: {total_created} created and "
               f"{total_closed} closed in all; at most {max([0] + [r['created'] for r in flow])} created "
               f"in one {bucket}.")
    return FlowChart(WIDTH, HEIGHT, plot, created, closed, columns, x_labels, y_ticks, summary, rows)


@dataclass
class Bar:
    y: float
    name: str
    open_tickets: int
    capacity: int | None
    available: bool
    length: float
    capacity_x: float | None
    href: str
    label: str
    over: bool


@dataclass
class LoadChart:
    width: int
    height: int
    label_width: int
    bar_height: int
    scale_width: float
    bars: list[Bar]
    ticks: list[tuple[float, int]]
    summary: str


def load_chart(agents: list[dict[str, Any]], link: Callable[[str], str]) -> LoadChart:
    """Lay out each agent's open tickets as a bar, with a mark at their capacity."""
    width, label_width, bar_height, gap = 460, 120, 18, 10
    scale_width = width - label_width - 64
    top = nice_ceiling(max([1] + [a["open_tickets"] for a in agents] + [a["capacity"] or 0 for a in agents]))
    bars = []
    for i, agent in enumerate(agents):
        y = TOP + i * (bar_height + gap)
        capacity = agent["capacity"]
        over = capacity is not None and agent["open_tickets"] >= capacity
        label = (f"{agent['name']}: {agent['open_tickets']} open"
                 + (f" of a capacity of {capacity}" if capacity is not None else ", no capacity set")
                 + ("" if agent["available"] else ", away"))
        bars.append(Bar(y, agent["name"], agent["open_tickets"], capacity, agent["available"],
                        scale_width * agent["open_tickets"] / top,
                        label_width + scale_width * capacity / top if capacity is not None else None,
                        link(str(agent["user_id"])), label, over))
    height = TOP + max(len(agents), 1) * (bar_height + gap) + BOTTOM
    ticks = [(label_width + scale_width * v / top, v) for v in sorted({0, top // 2, top})]
    full = sum(1 for b in bars if b.over)
    summary = (f"Open tickets of {len(bars)} agents against their capacity; {full} at or over capacity."
               if bars else "No agents yet.")
    return LoadChart(width, height, label_width, bar_height, scale_width, bars, ticks, summary)
