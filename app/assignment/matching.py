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


@lru_cache(maxsize=4096)
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    words = r"\s+".join(re.escape(w) for w in keyword.split())
    return re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)


def _lower(values: Iterable[str] | None) -> set[str]:
    return {v.casefold() for v in values or ()}


def rule_matches(conditions: dict[str, Any], ticket: TicketLike) -> bool:
    """Return whether every condition of a rule holds for the ticket."""
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
        text = f"{ticket.title}\n{ticket.description or ''}"
        if not any(_keyword_pattern(k).search(text) for k in keywords):
            return False
    return True


def route_for(ticket: TicketLike, rules: Sequence[RuleView]) -> Route | None:
    """Return the route of the first matching rule; a ticket already in a team falls back to it."""
    for rule in rules:
        if rule_matches(rule.conditions, ticket):
            return Route(team_id=rule.team_id, strategy=rule.strategy, required_skills=rule.required_skills,
                         rule_id=rule.id, rule_name=rule.name)
    if ticket.team_id is not None:
        return Route(team_id=ticket.team_id, strategy=FALLBACK_STRATEGY)
    return None
