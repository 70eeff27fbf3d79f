"""Markdown of messages and ticket descriptions, rendered to HTML and then sanitised, on the server.

Two independent layers, so a bug in one is not a hole: markdown-it-py renders CommonMark with raw
HTML switched off (a `<script>` in the source stays visible text), then nh3 (Ammonia) keeps only
the tags, attributes and URL schemes listed here. The same function serves pages and the
`body_html` of every message event, REST or socket, so a browser never turns user text into
markup itself. Images are not rendered: the page's CSP would refuse remote ones anyway, and a
tracking pixel in a reply is not something a requester should load by opening a ticket.

A message is rendered once, when written, and its HTML stored (`Message.body_html`); descriptions
and messages from before are rendered when shown.

markdown-it-py is pure Python, so its cost is bounded here rather than trusted: a 64 KiB text
of list items, table rows or headings took 0.5 to 0.8 s. Only a text's first `MARKDOWN_LINES`
lines are parsed as Markdown (at most about 35 ms whatever they hold), and inline markup only
within `INLINE_MARKUP_BUDGET`; what is past either stays as written.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from functools import lru_cache
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import mdTrim
from markdown_it.rules_block import StateBlock
from markdown_it.rules_block.table import escapedSplit, getLine, table
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markupsafe import Markup, escape

TAGS = frozenset({
    "p", "br", "strong", "em", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li", "a", "hr",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td",
})
ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow ugc"
# Rendering is pure, and a description is rendered again for every view of its ticket (a hostile
# 64 KiB one can still cost 0.1 s within the budgets below): each process keeps what it rendered,
# by text, within this much memory, the least recently used going first. An entry is counted at
# the most it can take: 4 bytes a character of HTML, and its key and bookkeeping.
CACHE_BYTES = 64 * 1024 * 1024
ENTRY_BYTES = 256

# Inline parsing costs about 10 µs for each character that may start markup (`[`, `*`, `_`, `<` ...),
# so 64 KiB of them took 0.6 s. One text's paragraphs, headings and cells are parsed in order while
# they hold this many in all; the rest stay as written (escaped, line breaks kept). Code blocks and
# lists still render.
INLINE_MARKUP_BUDGET = 4096

# Block parsing costs 12 to 50 µs a line, more the more lines a list or table has, and about 20 µs
# more for each list or quote the line opens or is nested in (8 deep: 170 µs). A text is parsed up
# to the line where this budget runs out, each line costing 1 and 1 more for each container it is
# in, so at most about 35 ms; lines past it are kept as written: paragraphs split at blank lines,
# line breaks kept.
MARKDOWN_LINES = 1000
# The list and quote markers a line starts with (its containers); a line without any continues
# those of the line before it unless a blank line came between (CommonMark's lazy lines).
_CONTAINERS = re.compile(r"[ \t]*(?:(?:>|[-+*](?=[ \t]|$)|\d{1,9}[.)](?=[ \t]|$))[ \t]*)+")
_MARKER = re.compile(r">|[-+*]|\d{1,9}[.)]")
# A quote that opens (its line's before is not quoted) makes markdown-it look at every non-blank line
# after it for a lazy continuation, about 0.5 µs each: 500 quotes reopened over 1,000 lines took 0.4 s.
# Such a line (its quotes deeper than the line before's) is charged 1 more for each `RESCAN` lines
# and each `RESCAN_CHARS` characters of its run (each is read again, some character by character).
_QUOTE_MARKS = re.compile(r"[ \t]*(?:>[ \t]*)+")
RESCAN = 32
RESCAN_CHARS = 256
# A table cell costs about 20 µs, and rows shorter than the header are filled out with empty cells,
# so 20 KB of a wide header and short rows made 65,000 cells (1 s). One text's tables hold at most
# this many cells in all; rows past it, or a header wider than what is left, stay as written.
TABLE_CELLS = 2048
# What markdown-it takes for a line ending (its `normalize` rule).
_NEWLINE = re.compile(r"\r\n?|\n")
_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n)+")


@lru_cache(maxsize=1)
def _renderer() -> MarkdownIt:
    # "breaks": a new line in a chat message is a new line on screen, as people expect.
    md = (MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False})
          .enable(["table", "strikethrough"]).disable("image"))
    md.core.ruler.at("inline", _inline_within_budget)
    md.block.ruler.at("table", _table_within_budget, {"alt": ["paragraph", "reference"]})  # as markdown-it has it
    return md


def _table_within_budget(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """Parse a table as markdown-it does, with only as many rows as the text's cell budget has left."""
    left = state.env.setdefault("table_cells", TABLE_CELLS)
    header = escapedSplit(mdTrim(getLine(state, start)))
    columns = len(header) - (header[:1] == [""]) - (len(header) > 1 and header[-1:] == [""])
    rows = left // max(columns, 1) - 1  # body rows, after the header's
    if rows < 0 or not table(state, start, min(end, start + 2 + rows), silent):
        return False
    if not silent:
        state.env["table_cells"] = left - columns * (state.line - start - 1)
    return True


def _inline_within_budget(state: StateCore) -> None:
    """Parse inline markup as markdown-it does while the budget lasts; a paragraph, heading or cell
    past it is kept as written, its lines broken as typed."""
    markers = state.md.inline.terminator_re
    budget = INLINE_MARKUP_BUDGET
    for token in (token for token in state.tokens if token.type == "inline"):
        found = len(markers.findall(token.content))
        if found > budget:
            token.children = []
            for i, line in enumerate(token.content.split("\n")):
                if i:
                    token.children.append(Token("hardbreak", "br", 0))
                token.children.append(Token("text", "", 0, content=line))
        else:
            budget -= found
            token.children = token.children or []
            state.md.inline.parse(token.content, state.md, state.env, token.children)


def render(text: str | None) -> str:
    """Return the sanitised HTML of a Markdown text (empty for an empty or missing text)."""
    if not text:
        return ""
    key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    html = _rendered.get(key)
    if html is None:
        html = _render(text)
        _rendered.put(key, html)
    return html


class _Rendered:
    """What this process rendered, by the text's hash, within `CACHE_BYTES` (least recently used out)."""

    def __init__(self) -> None:
        self._html: OrderedDict[bytes, str] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: bytes) -> str | None:
        with self._lock:
            html = self._html.get(key)
            if html is not None:
                self._html.move_to_end(key)
            return html

    def put(self, key: bytes, html: str) -> None:
        with self._lock:
            if key in self._html:
                return
            self._html[key] = html
            self._bytes += _size(html)
            while self._bytes > CACHE_BYTES:
                self._bytes -= _size(self._html.popitem(last=False)[1])


def _size(html: str) -> int:
    return 4 * len(html) + ENTRY_BYTES


_rendered = _Rendered()


def _render(text: str) -> str:
    lines = _NEWLINE.split(text, maxsplit=MARKDOWN_LINES)
    parsed = _lines_within_budget(lines)
    while 0 < parsed < len(lines) and _is_blank(lines[parsed - 1]):
        parsed -= 1  # markdown-it does not count a blank last line, so a fence it ends would look closed
    md = _renderer()
    tokens = md.parse("\n".join(lines[:parsed]))
    html = md.renderer.render(tokens, md.options, {})
    if parsed < len(lines):
        rest = _NEWLINE.sub("\n", "\n".join(lines[parsed:]))
        fence = _open_fence(tokens, lines[:parsed])
        if fence is not None:  # a long code block goes on as one, to its closing fence
            closing, indent = fence
            end = closing.search(rest)
            code, rest = (rest[:end.start()], rest[end.end():]) if end else (rest, "")
            code = re.sub(rf"(?m)^ {{0,{indent}}}", "", code)  # as markdown-it strips the fence's indent
            glue = "\n" if tokens[-1].content else ""
            html = html.removesuffix("</code></pre>\n") + f"{glue}{escape(code)}</code></pre>\n"
        html += _as_written(rest)
    return nh3.clean(html, tags=set(TAGS), attributes={k: set(v) for k, v in ATTRIBUTES.items()},
                     url_schemes=set(URL_SCHEMES), link_rel=LINK_REL, strip_comments=True).strip()


def _lines_within_budget(lines: list[str]) -> int:
    """Return how many of `lines` to parse: those the `MARKDOWN_LINES` budget pays for."""
    # From each line to the next blank one (blank as markdown-it reads it: spaces and tabs only), the
    # lines and characters a quote opening there makes it read again.
    run = [(0, 0)] * (MARKDOWN_LINES + 1)
    for i in range(min(len(lines), MARKDOWN_LINES) - 1, -1, -1):
        run[i] = (run[i + 1][0] + 1, run[i + 1][1] + len(lines[i])) if not _is_blank(lines[i]) else (0, 0)
    spent = depth = quotes_before = 0
    blank_before = False
    for parsed, line in enumerate(lines):
        prefix = _CONTAINERS.match(line)
        if prefix is not None:
            depth = len(_MARKER.findall(prefix.group()))
        elif blank_before and line[:1] not in (" ", "\t"):
            depth = 0  # a paragraph at the margin after a blank line: out of every list and quote
        marks = _QUOTE_MARKS.match(line)
        quotes = marks.group().count(">") if marks else 0
        rescan = run[parsed][0] // RESCAN + run[parsed][1] // RESCAN_CHARS if quotes > quotes_before else 0
        spent += 1 + depth + (rescan if parsed < MARKDOWN_LINES else 0)
        if spent > MARKDOWN_LINES:
            return parsed
        blank_before, quotes_before = _is_blank(line), quotes
    return len(lines)


def _is_blank(line: str) -> bool:
    """Whether markdown-it takes `line` for a blank one (only spaces and tabs; not other white space)."""
    return not line.strip(" \t")


def _open_fence(tokens: list[Token], parsed: list[str]) -> tuple[re.Pattern[str], int] | None:
    """Return the closing line's pattern and the indent of a top-level code fence the parsed lines end
    inside, if they do."""
    if not tokens or tokens[-1].type != "fence" or tokens[-1].level or tokens[-1].map is None:
        return None
    fence = tokens[-1]
    if fence.map[1] < len(parsed):
        return None  # closed before the last line parsed
    closing = re.compile(rf"(?m)^ {{0,3}}{re.escape(fence.markup[0])}{{{len(fence.markup)},}}[ \t]*(?:\n|\Z)")
    if fence.map[0] < fence.map[1] - 1 and closing.fullmatch(parsed[-1]):
        return None  # closed on the last line parsed
    opener = parsed[fence.map[0]]
    return closing, len(opener) - len(opener.lstrip(" "))


def _as_written(text: str) -> str:
    """Return `text` as escaped paragraphs (split at blank lines) with its line breaks kept."""
    paragraphs = _BLANK_LINES.split(str(escape(text.strip("\n"))))
    return "".join("<p>{}</p>\n".format(p.replace("\n", "<br>\n")) for p in paragraphs if p.strip())


def stored_or_rendered(html: str | None, text: str | None) -> str:
    """Return the HTML stored when `text` was written, or render it now (for rows written before HTML was kept)."""
    return render(text) if html is None else html


def render_markup(text: str | None) -> Markup:
    """Return `render(text)` marked safe for Jinja (it is sanitised already)."""
    return Markup(render(text))


def message_markup(message: Any) -> Markup:
    """Return a message's HTML (as stored, or rendered now) marked safe for Jinja."""
    return Markup(stored_or_rendered(message.body_html, message.body))
