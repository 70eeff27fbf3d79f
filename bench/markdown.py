"""Markdown figures: the dearest 64 KiB texts to render beside 64 KiB of plain prose.

A message is rendered when written and a ticket's description on every view of its ticket, in
the web process, so what one text can cost is what one requester can make a worker spend. Each
text is the largest a message or description may be, made of one kind of block or markup
repeated (the shapes that were slowest before rendering was bounded), or a table whose short
rows are filled out to a wide header; each is rendered uncached `ROUNDS` times and its median kept.
"""

from __future__ import annotations

import time

from app.markdown import _render
from bench.common import BenchContext, Row, median

SIZE = 64 * 1024
ROUNDS = 5
UNITS = {
    "list items": "- a\n", "numbered items": "1. a\n", "quoted lines": "> a\n", "headings": "# a\n",
    "table rows": "|a|b|\n", "paragraphs": "a\n\n", "short lines": "a\n", "link definitions": "[a]: b\n",
    "underlined headings": "a\n=\n", "brackets": "[", "emphasis": "*a", "links": "[a](b) ",
    "lists eight deep": "- " * 8 + "a\n", "quoted lists": "> - " * 5 + "a\n", "quotes reopened": "> ***\na\n",
}
WIDE_TABLE = "|a" * 5000 + "|\n" + "|-" * 5000 + "|\n" + "x\n" * 20  # short rows filled out to the header
PROSE = "The printer on the second floor jams whenever a duplex job is sent from the finance team. "


def run(ctx: BenchContext) -> list[Row]:
    prose = _median_ms(_text(PROSE))
    texts = {name: _text(unit) for name, unit in UNITS.items()}
    texts["a wide table of short rows"] = WIDE_TABLE
    texts["64-column tables"] = _text("|a" * 64 + "|\n" + "|-" * 64 + "|\n" + ("|a" * 64 + "|\n") * 30 + "\n")
    timed = {name: _median_ms(text) for name, text in texts.items()}
    slowest = max(timed, key=timed.__getitem__)
    return [Row("markdown: slowest 64 KiB text to render", timed[slowest], "ms", "64 KiB of plain prose", prose,
                aim="< 100 ms", note=f"{slowest}; " + ", ".join(f"{k} {v:.0f}" for k, v in timed.items()))]


def _text(unit: str) -> str:
    return (unit * (SIZE // len(unit) + 1))[:SIZE]


def _median_ms(text: str) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        _render(text)
        times.append((time.perf_counter() - started) * 1000)
    return median(times)
