"""How a strategy picks one agent of a team, from a snapshot of the members and their load.

Pure functions over `Agent` snapshots taken under row locks (see `services`), so every pick
can be explained: each candidate carries its load and, if passed over, why.

Capacity is the most open tickets (`new`, `open`, `pending`) an agent holds before auto-assignment
passes them over, as in Freshdesk and Zendesk. `null` means no limit; `0` means no automatic
tickets at all. Manual assignment is not held to it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass
class Agent:
    """One team member as assignment sees them; `open_tickets` grows as tickets are handed out."""

    id: uuid.UUID
    name: str
    available: bool
    capacity: int | None
    skills: frozenset[str]
    open_tickets: int = 0
    last_assigned_at: datetime | None = None

    def has_room(self) -> bool:
        return self.available and (self.capacity is None or self.open_tickets < self.capacity)

    def passed_over(self, required_skills: frozenset[str]) -> str | None:
        """Return why this agent cannot take a ticket now, or None if they can."""
        if not self.available:
            return "away"
        if self.capacity is not None and self.open_tickets >= self.capacity:
            return f"at capacity ({self.open_tickets}/{self.capacity} open)"
        missing = sorted(required_skills - self.skills)
        if missing:
            return "missing skills: " + ", ".join(missing)
        return None


@dataclass
class Pick:
    """A strategy's answer: the agent (or None), why, and every member considered."""

    agent: Agent | None
    reason: str
    candidates: list[dict[str, Any]] = field(default_factory=list)


def _candidates(members: Sequence[Agent], required: frozenset[str], chosen: Agent | None) -> list[dict[str, Any]]:
    rows = []
    for a in members:
        note = a.passed_over(required)
        rows.append({"user_id": str(a.id), "name": a.name, "open_tickets": a.open_tickets,
                     "capacity": a.capacity, "available": a.available, "eligible": note is None,
                     "chosen": chosen is not None and a.id == chosen.id, "note": note})
    return rows


def _idle_key(agent: Agent) -> tuple:
    return (agent.open_tickets, agent.last_assigned_at or NEVER, str(agent.id))


def choose(strategy: str, members: Sequence[Agent], required_skills: frozenset[str] = frozenset(),
           last_assigned_id: uuid.UUID | None = None, rotation_start: int | None = None) -> Pick:
    """Pick an agent among `members` (in the team's rotation order) with `strategy`; under any strategy,
    only members with every required skill are candidates."""
    eligible = [a for a in members if a.passed_over(required_skills) is None]
    if not members:
        return Pick(None, "The team has no members.", [])
    if not eligible:
        return Pick(None, _nobody_reason(members, required_skills), _candidates(members, required_skills, None))
    if strategy == "round_robin":
        agent = _next_in_rotation(members, eligible, last_assigned_id, rotation_start)
        after = _name_of(members, last_assigned_id) if rotation_start is None else "a member who has left the team"
        reason = f"Round robin: next in rotation after {after}."
    else:
        agent = min(eligible, key=_idle_key)
        ties = [a for a in eligible if a.open_tickets == agent.open_tickets]
        prefix = "Skills match, then least loaded" if strategy == "skills" else "Least loaded"
        reason = f"{prefix}: {agent.open_tickets} open tickets"
        reason += ", longest idle among equals." if len(ties) > 1 else "."
    return Pick(agent, reason, _candidates(members, required_skills, agent))


def _next_in_rotation(members: Sequence[Agent], eligible: list[Agent], last_id: uuid.UUID | None,
                      start: int | None) -> Agent:
    """The first eligible member after `last_id`, or from `start` when that member is no longer in the team."""
    ids = [a.id for a in members]
    start = ids.index(last_id) + 1 if last_id in ids else start or 0
    ok = {a.id for a in eligible}
    for step in range(len(members)):
        agent = members[(start + step) % len(members)]
        if agent.id in ok:
            return agent
    return eligible[0]


def _name_of(members: Sequence[Agent], user_id: uuid.UUID | None) -> str:
    for a in members:
        if a.id == user_id:
            return a.name
    return "the start of the team"


def _nobody_reason(members: Sequence[Agent], required: frozenset[str]) -> str:
    notes = {a.passed_over(required) or "" for a in members}
    if all(n == "away" for n in notes):
        return "Nobody free: every member is away."
    if all(n.startswith("at capacity") or n == "away" for n in notes):
        return "Nobody free: every available member is at capacity."
    if required and all(n.startswith("missing skills") or n == "away" for n in notes):
        return "Nobody free: no available member has the required skills."
    return "Nobody free: every member is away, at capacity or lacks the required skills."
