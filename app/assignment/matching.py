"""Which rule a ticket falls under: pure functions, so the API, the worker and tests agree.

A rule matches when every condition it states matches (an absent or empty condition matches
anything): `priority` and `category` list allowed values, `tags_any` needs one shared tag and
`keywords_any` one keyword found as a whole word (or phrase) in the title or description, all
case-insensitively. Rules are tried by `position`, then age; the first enabled match wins.
"""

from __future__ import annotations

import re
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
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


# Keywords are matched on a text read as words (runs of \w), marks (any other character but
# whitespace) and runs of whitespace, folded to lower case one character for one (as the pattern
# `(?<!\w)w1\s+w2(?!\w)` with re.IGNORECASE matched them, Turkish and Greek letters included). A
# mark glued to a word is another symbol than the same mark standing free, so a keyword is found
# exactly where it stands as a whole word or phrase. Every keyword of the rules goes into one
# Aho-Corasick automaton over those symbols, so a ticket's text is read once, whatever the number
# of rules and keywords (a pattern, then a substring search, per keyword took seconds a ticket
# against crafted keywords).
_TOKENS = re.compile(r"(\w+)|(\s+)|([^\w\s])")
_SPACE, _UNKNOWN = -1, -2  # symbols of a run of whitespace, and of a word or mark no keyword has
# Letters re.IGNORECASE takes for one another beyond lower case (its `re._casefix` table: dotless i,
# long s, micro sign and mu, final sigma, Greek symbol forms, old Cyrillic forms), each class folded
# to its first member; and dotted capital I, whose lower() is two characters, to i.
_ALIKE = ("\u0069\u0131", "\u0073\u017f", "\u00b5\u03bc", "\u0345\u03b9\u1fbe", "\u0390\u1fd3",
          "\u03b0\u1fe3", "\u03b2\u03d0", "\u03b5\u03f5", "\u03b8\u03d1", "\u03ba\u03f0", "\u03c0\u03d6",
          "\u03c1\u03f1", "\u03c2\u03c3", "\u03c6\u03d5", "\u0432\u1c80", "\u0434\u1c81", "\u043e\u1c82",
          "\u0441\u1c83", "\u0442\u1c84\u1c85", "\u044a\u1c86", "\u0463\u1c87", "\u1c88\ua64b",
          "\u1e61\u1e9b", "\ufb05\ufb06")
_DOTTED_I = str.maketrans({"\u0130": "i"})
_FOLD = str.maketrans({other: alike[0] for alike in _ALIKE for other in alike[1:]})


def _fold(text: str) -> str:
    return text.translate(_DOTTED_I).lower().translate(_FOLD)


class Keywords:
    """The keywords of a set of rules: `found_in(ticket)` says which of them its title or description holds."""

    def __init__(self, keywords: Iterable[str]) -> None:
        self._ids: dict[str, int] = {}
        self._goto: dict[tuple[int, int], int] = {}
        self._fail: list[int] = [0]
        self._out: list[tuple[str, ...]] = [()]
        children: list[list[tuple[int, int]]] = [[]]
        for keyword in sorted(set(keywords)):
            node = 0
            for symbol in self._symbols(keyword.strip(), learn=True):
                child = self._goto.get((node, symbol))
                if child is None:
                    child = self._goto[node, symbol] = len(self._fail)
                    self._fail.append(0)
                    self._out.append(())
                    children.append([])
                    children[node].append((symbol, child))
                node = child
            if node:
                self._out[node] += (keyword,)
        queue = deque(child for _, child in children[0])
        while queue:  # breadth first: each node's fallback is the longest proper suffix that is a prefix
            node = queue.popleft()
            for symbol, child in children[node]:
                fallback = self._fail[node]
                while fallback and (fallback, symbol) not in self._goto:
                    fallback = self._fail[fallback]
                self._fail[child] = self._goto.get((fallback, symbol), 0)
                self._out[child] += self._out[self._fail[child]]
                queue.append(child)

    def _symbols(self, text: str, learn: bool) -> list[int]:
        tokens = _TOKENS.findall(_fold(text))
        symbols = []
        for i, (word, space, mark) in enumerate(tokens):
            if space:
                symbols.append(_SPACE)
                continue
            n = self._ids.get(word or mark)
            if n is None:
                if not learn:
                    symbols.append(_UNKNOWN)
                    continue
                n = self._ids[word or mark] = len(self._ids)
            glued = 0 if word else 2 * (i > 0 and bool(tokens[i - 1][0])) + (i + 1 < len(tokens) and
                                                                              bool(tokens[i + 1][0]))
            symbols.append(4 * n + glued)
        return symbols

    def found_in(self, ticket: TicketLike) -> frozenset[str]:
        if not self._goto:
            return frozenset()
        found: set[str] = set()
        seen: set[int] = set()
        node = 0
        for symbol in self._symbols(f"{ticket.title}\n{ticket.description or ''}", learn=False):
            while node and (node, symbol) not in self._goto:
                node = self._fail[node]
            node = self._goto.get((node, symbol), 0)
            if self._out[node] and node not in seen:
                seen.add(node)
                found.update(self._out[node])
        return frozenset(found)


@lru_cache(maxsize=8)
def _keywords(keywords: frozenset[str]) -> Keywords:
    return Keywords(keywords)


def keywords_found(ticket: TicketLike, conditions: Iterable[dict[str, Any]]) -> frozenset[str]:
    """Return the keywords of these rules' conditions that the ticket's title or description holds."""
    wanted = frozenset(k for c in conditions for k in c.get("keywords_any") or () if k.strip())
    return _keywords(wanted).found_in(ticket) if wanted else frozenset()


def _lower(values: Iterable[str] | None) -> set[str]:
    return {v.casefold() for v in values or ()}


def rule_matches(conditions: dict[str, Any], ticket: TicketLike, found: frozenset[str] | None = None) -> bool:
    """Return whether every condition of a rule holds for the ticket (`found`: its keywords, if known)."""
    priorities = conditions.get("priority") or []
    if priorities and ticket.priority not in priorities:
        return False
    categories = _lower(conditions.get("category"))
    if categories and (ticket.category or "").casefold() not in categories:
        return False
    tags = _lower(conditions.get("tags_any"))
    if tags and not tags & _lower(ticket.tags):
        return False
    keywords = conditions.get("keywords_any") or []
    if keywords:  # one must be found: a rule stored with blank ones alone matches nothing, not everything
        found = keywords_found(ticket, [conditions]) if found is None else found
        if not any(k in found for k in keywords if k.strip()):
            return False
    return True


def route_for(ticket: TicketLike, rules: Sequence[RuleView], found: frozenset[str] | None = None) -> Route | None:
    """Return the route of the first matching rule; a ticket already in a team falls back to it."""
    if found is None:
        found = keywords_found(ticket, [rule.conditions for rule in rules])
    for rule in rules:
        if rule_matches(rule.conditions, ticket, found):
            return Route(team_id=rule.team_id, strategy=rule.strategy, required_skills=rule.required_skills,
                         rule_id=rule.id, rule_name=rule.name)
    if ticket.team_id is not None:
        return Route(team_id=ticket.team_id, strategy=FALLBACK_STRATEGY)
    return None
