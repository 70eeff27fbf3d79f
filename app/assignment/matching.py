"""Which rule a ticket falls under: pure functions, so the API, the worker and tests agree.

A rule matches when every condition it states matches (an absent or empty condition matches
anything): `priority` and `category` list allowed values, `tags_any` needs one shared tag and
`keywords_any` one keyword found as a whole word (or phrase) in the title or description, all
case-insensitively. Rules are tried by `position`, then age; the first enabled match wins.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

FALLBACK_STRATEGY = "least_loaded"


class TicketLike(Protocol):
    title: str
    description: str
    priority: str
    category: str | None
    tags: list[str]
    team_id: uuid.UUID | None


@dataclass(frozen=True)
class Route:
    """Where a ticket goes: the team, how an agent is picked, and the rule that said so."""

    team_id: uuid.UUID
    strategy: str
    required_skills: frozenset[str] = field(default_factory=frozenset)
    rule_id: uuid.UUID | None = None
    rule_name: str | None = None


@dataclass(frozen=True)
class RuleView:
    """The parts of an `AssignmentRule` matching needs, detached from the session."""

    id: uuid.UUID
    name: str
    conditions: dict[str, Any]
    team_id: uuid.UUID
    strategy: str
    required_skills: frozenset[str]

    @classmethod
    def of(cls, rule: Any) -> RuleView:
        return cls(id=rule.id, name=rule.name, conditions=dict(rule.conditions or {}), team_id=rule.team_id,
                   strategy=rule.strategy, required_skills=frozenset(rule.required_skills or ()))


# A text is read as words (runs of \w), marks (any other character but whitespace) and runs of
# whitespace. Each becomes one character of a "haystack": whitespace one shared character, each
# distinct word its own, each distinct mark one of four (is a word glued to its left, to its
# right). A keyword read the same way is then a substring of the haystack exactly where it is a
# whole word or phrase of the text, so finding it is one substring search, linear in the text. (A
# pattern per keyword, `w1\s+w2...`, backtracked: 50 words against 64 KiB took 0.2 s a keyword.)
_TOKENS = re.compile(r"(\w+)|(\s+)|([^\w\s])")
_SPACE = "\x01"
_WORDS, _MARKS = 0x10000, 0x80000  # code points of the words' and the marks' characters: a text of at most
# 64 KiB has fewer distinct words than 0x70000, and fewer distinct marks than 0x90000 / 4


class Haystack:
    """A text read for keywords: `has(keyword)` says whether it holds the keyword as a whole word or phrase."""

    def __init__(self, text: str) -> None:
        self._codes: dict[str, int] = {}
        self._counts = [0, 0]  # distinct marks, distinct words
        self._found: dict[str, bool] = {}
        self.text = "".join(self._read(text, learn=True) or ())

    def _read(self, text: str, learn: bool) -> list[str] | None:
        """Return `text` as haystack characters; None if it has a word or mark the haystack has not."""
        tokens = _TOKENS.findall(text.casefold())
        out: list[str] = []
        for i, (word, space, mark) in enumerate(tokens):
            if space:
                out.append(_SPACE)
                continue
            code = self._codes.get(word or mark)
            if code is None:
                if not learn:
                    return None
                n = self._counts[bool(word)]
                self._counts[bool(word)] += 1
                code = self._codes[word or mark] = _WORDS + n if word else _MARKS + 4 * n
            if word:
                out.append(chr(code))
            else:  # a mark glued to a word is another character than the same mark standing free
                left = i > 0 and bool(tokens[i - 1][0])
                right = i + 1 < len(tokens) and bool(tokens[i + 1][0])
                out.append(chr(code + 2 * left + right))
        return out

    def has(self, keyword: str) -> bool:
        found = self._found.get(keyword)
        if found is None:
            needle = self._read(keyword.strip(), learn=False)
            found = self._found[keyword] = bool(needle) and "".join(needle) in self.text
        return found


def _lower(values: Iterable[str] | None) -> set[str]:
    return {v.casefold() for v in values or ()}


def rule_matches(conditions: dict[str, Any], ticket: TicketLike, text: Haystack | None = None) -> bool:
    """Return whether every condition of a rule holds for the ticket (`text`: its title and description, read)."""
    priorities = conditions.get("priority") or []
    if priorities and ticket.priority not in priorities:
        return False
    categories = _lower(conditions.get("category"))
    if categories and (ticket.category or "").casefold() not in categories:
        return False
    tags = _lower(conditions.get("tags_any"))
    if tags and not tags & _lower(ticket.tags):
        return False
    keywords = [k for k in conditions.get("keywords_any") or [] if k.strip()]
    if keywords:
        text = text or haystack(ticket)
        if not any(text.has(k) for k in keywords):
            return False
    return True


def haystack(ticket: TicketLike) -> Haystack:
    """Read a ticket's title and description for keywords, once for all its rules."""
    return Haystack(f"{ticket.title}\n{ticket.description or ''}")


def route_for(ticket: TicketLike, rules: Sequence[RuleView], text: Haystack | None = None) -> Route | None:
    """Return the route of the first matching rule; a ticket already in a team falls back to it."""
    for rule in rules:
        if rule.conditions.get("keywords_any") and text is None:
            text = haystack(ticket)
        if rule_matches(rule.conditions, ticket, text):
            return Route(team_id=rule.team_id, strategy=rule.strategy, required_skills=rule.required_skills,
                         rule_id=rule.id, rule_name=rule.name)
    if ticket.team_id is not None:
        return Route(team_id=ticket.team_id, strategy=FALLBACK_STRATEGY)
    return None
