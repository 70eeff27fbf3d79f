"""Assignment rules, the automatic assignment of tickets, and the record of every decision.

Runs in RQ workers (see `handlers`), one transaction per outbox row. Safety under many workers
comes from row locks taken in one global order, so there are no deadlocks:

1. tickets: the ticket being assigned (waiting for it), queued tickets (`SKIP LOCKED`);
2. teams, by id: serialises a team's round-robin pointer;
3. users, by id: an agent's load is counted only while their row is locked, so two
   workers can never both hand out an agent's last free slot, even from different teams.

Every lock is `FOR NO KEY UPDATE`: it excludes other assignments and ticket edits, but not the
foreign-key checks of rows that merely point at the same ticket, team or agent (a new message,
a ticket whose requester is the agent), so chat and ticket creation never wait on assignment.

A drain locks teams and users before it picks queued tickets (skipping the ones another worker
holds), so a drain that starts after capacity frees always sees the freed capacity.

Unassigned queue: tickets `new` with no assignee. A matched ticket nobody can take keeps the
rule's team in `team_id` and waits; queued tickets are handed out highest priority, then oldest,
first, whenever capacity frees up (a ticket closes or is reassigned, an agent becomes available,
capacity is raised, a member joins, rules change) and before any newer ticket of the same team.
Queued tickets are routed afresh each time (rules may have changed), except one put in a team by
hand with no assignee: it waits for that team, served least loaded, whatever the rules say.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from app import audit
from app.assignment.matching import FALLBACK_STRATEGY, Route, RuleView, keywords_found, route_for, rule_matches
from app.assignment.models import AssignmentDecision, AssignmentRule
from app.assignment.strategies import Agent, Pick, choose
from app.auth.actor import Actor
from app.errors import Conflict, Invalid, NotFound
from app.extensions import db
from app.outbox import emit
from app.pagination import SortKey, page
from app.people.models import STAFF_ROLES, Team, TeamMember, User
from app.realtime import publish_after_commit
from app.tickets.models import OPEN_STATUSES, PRIORITIES, Ticket
from app.tickets.services import event_data
from tenants import one_at_a_time

PRIORITY_RANKS = {priority: rank for rank, priority in enumerate(PRIORITIES)}
RULE_FIELDS = ("name", "position", "conditions", "team_id", "strategy", "required_skills", "enabled")
RULES_CHANGED = "assignment.rules_changed"
QUEUE_CHANGED = "assignment.queue_changed"
DRAIN_BATCH = 500
DRAIN_BATCHES = 20  # reads of the whole queue past tickets nobody free can take (10,000), then as many of free teams
AHEAD_BATCH = 100
# Every rule is tried on every waiting ticket (its keywords searched in title and description), by
# workers all organizations share: a bound on the rules is a bound on that work.
MAX_RULES = 200
# All rules' keywords make one automaton per worker process (`matching.Keywords`): their total length bounds
# its build (about 0.1 s) and its memory (a few MB).
MAX_KEYWORD_CHARACTERS = 20_000


# --- rules -----------------------------------------------------------------------------------

def rules_query() -> sa.Select:
    """Return a select of every rule in evaluation order."""
    return sa.select(AssignmentRule).order_by(AssignmentRule.position, AssignmentRule.created_at,
                                              AssignmentRule.id)


RULE_KEYS = [SortKey(AssignmentRule.position, kind="int"), SortKey(AssignmentRule.created_at, kind="datetime"),
             SortKey(AssignmentRule.id, kind="uuid")]


def list_rules(limit: int, cursor: str | None) -> tuple[list[AssignmentRule], str | None]:
    """Return a page of rules in the order they are tried."""
    return page(db.session, sa.select(AssignmentRule), RULE_KEYS, limit, cursor)


def rule_or_404(rule_id: uuid.UUID) -> AssignmentRule:
    """Return the rule with this id, or raise NotFound."""
    rule = db.session.get(AssignmentRule, rule_id)
    if rule is None:
        raise NotFound("No such assignment rule.")
    return rule


def enabled_rules() -> list[RuleView]:
    """Return the enabled rules in evaluation order, detached from the session."""
    rules = db.session.execute(rules_query().where(AssignmentRule.enabled.is_(True))).scalars()
    return [RuleView.of(r) for r in rules]


def _rule_snapshot(rule: AssignmentRule) -> dict[str, Any]:
    return {f: getattr(rule, f) for f in RULE_FIELDS}


def _check_rule(values: dict[str, Any]) -> None:
    """Refuse a rule whose team does not exist, or a skills rule without skills: 422 naming the fields.

    The body is well formed, but what it says cannot be a rule of this organization.
    """
    errors: dict[str, list[str]] = {}
    if db.session.get(Team, values["team_id"]) is None:
        errors["team_id"] = ["No such team."]
    if values["strategy"] == "skills" and not values.get("required_skills"):
        errors["required_skills"] = ["The skills strategy needs at least one required skill."]
    if errors:
        raise Invalid("; ".join(m for ms in errors.values() for m in ms), errors)


def _check_keywords(rule_id: uuid.UUID | None, conditions: dict[str, Any]) -> None:
    """Refuse keywords past the organization's total (409): every worker builds them into one automaton."""
    others = db.session.execute(sa.select(AssignmentRule.conditions).where(AssignmentRule.id != rule_id)
                                if rule_id else sa.select(AssignmentRule.conditions)).scalars()
    total = sum(len(k) for c in [*others, conditions] for k in (c or {}).get("keywords_any") or ())
    if total > MAX_KEYWORD_CHARACTERS:
        raise Conflict(f"An organization's rules may hold at most {MAX_KEYWORD_CHARACTERS:,} characters of "
                       "keywords in all; shorten or merge some.")


def _clean_conditions(conditions: dict[str, Any] | None) -> dict[str, Any]:
    return {k: sorted(set(v), key=str) for k, v in (conditions or {}).items() if v}


def create_rule(name: str, team_id: uuid.UUID, strategy: str, position: int = 0,
                conditions: dict[str, Any] | None = None, required_skills: list[str] | None = None,
                enabled: bool = True) -> AssignmentRule:
    """Add a rule; queued tickets are re-evaluated in the background."""
    values = {"name": name, "team_id": team_id, "strategy": strategy, "position": position,
              "conditions": _clean_conditions(conditions), "required_skills": sorted(set(required_skills or [])),
              "enabled": enabled}
    _check_rule(values)
    one_at_a_time("assignment_rules")
    if db.session.execute(sa.select(sa.func.count()).select_from(AssignmentRule)).scalar_one() >= MAX_RULES:
        raise Conflict(f"An organization may have at most {MAX_RULES} assignment rules.")
    _check_keywords(None, values["conditions"])
    rule = AssignmentRule(id=uuid.uuid4(), **values)
    db.session.add(rule)
    db.session.flush()
    audit.record("assignment_rule", rule.id, "created", after=_rule_snapshot(rule))
    emit(RULES_CHANGED, {"rule_id": str(rule.id)})
    return rule


def update_rule(rule: AssignmentRule, changes: dict[str, Any]) -> AssignmentRule:
    """Change a rule; queued tickets are re-evaluated in the background."""
    before = _rule_snapshot(rule)
    values = {**before, **changes}
    if "conditions" in changes:
        values["conditions"] = _clean_conditions(changes["conditions"])
    if "required_skills" in changes:
        values["required_skills"] = sorted(set(changes["required_skills"] or []))
    _check_rule(values)
    if "conditions" in changes:
        one_at_a_time("assignment_rules")
        _check_keywords(rule.id, values["conditions"])
    for f in RULE_FIELDS:
        setattr(rule, f, values[f])
    db.session.flush()
    after = _rule_snapshot(rule)
    if after != before:
        audit.record("assignment_rule", rule.id, "updated", before=before, after=after)
        emit(RULES_CHANGED, {"rule_id": str(rule.id)})
    return rule


def delete_rule(rule: AssignmentRule) -> None:
    """Delete a rule; past decisions keep its name."""
    audit.record("assignment_rule", rule.id, "deleted", before=_rule_snapshot(rule))
    db.session.delete(rule)
    emit(RULES_CHANGED, {"rule_id": str(rule.id)})


def reorder_rules(rule_ids: list[uuid.UUID]) -> None:
    """Put every rule in this order (positions 10, 20, 30 ...); each rule must be named exactly once.

    Rules are locked first, so two admins reordering at once take turns, and a list that no
    longer names every rule (one was added or deleted meanwhile) is refused instead of guessed at.
    """
    rules = {r.id: r for r in db.session.execute(rules_query().with_for_update()).scalars()}
    if len(rule_ids) != len(rules) or set(rule_ids) != set(rules):
        message = "The rules changed meanwhile; reload the page and order them again."
        raise Conflict(message, {"rule_ids": [message]})
    for index, rule_id in enumerate(rule_ids):
        position = (index + 1) * 10
        if rules[rule_id].position != position:
            update_rule(rules[rule_id], {"position": position})


def move_rule(rule_id: uuid.UUID, offset: int) -> None:
    """Move a rule `offset` places earlier (negative) or later in the order in which rules are tried."""
    order = list(db.session.execute(rules_query().with_only_columns(AssignmentRule.id)).scalars())
    if rule_id not in order:
        raise NotFound("No such assignment rule.")
    index = order.index(rule_id)
    target = min(max(index + offset, 0), len(order) - 1)
    order.insert(target, order.pop(index))
    reorder_rules(order)


# --- the pool of agents, under lock ----------------------------------------------------------

@dataclass
class Pool:
    """Locked teams and their members' snapshots; `Agent` objects are shared across teams."""

    teams: dict[uuid.UUID, Team] = field(default_factory=dict)
    members: dict[uuid.UUID, list[Agent]] = field(default_factory=dict)  # in rotation order: by when they joined
    users: dict[uuid.UUID, User] = field(default_factory=dict)
    joined: dict[tuple[uuid.UUID, uuid.UUID], datetime] = field(default_factory=dict)  # (team, user): when

    def has_room(self) -> bool:
        return any(a.has_room() for agents in self.members.values() for a in agents)

    def teams_with_room(self) -> list[uuid.UUID]:
        """Return the teams with a member free to take a ticket."""
        return [team_id for team_id, agents in self.members.items() if any(a.has_room() for a in agents)]


def lock_pool(team_ids: Iterable[uuid.UUID], lock: bool = True) -> Pool:
    """Lock the teams, then their members (both by id), and count each member's open tickets.

    With `lock=False` (a dry run) the same snapshot is read without taking any lock.
    """
    ids = sorted(set(team_ids))
    pool = Pool()
    if not ids:
        return pool
    teams = sa.select(Team).where(Team.id.in_(ids)).order_by(Team.id).execution_options(populate_existing=True)
    pool.teams = {t.id: t for t in db.session.execute(
        teams.with_for_update(key_share=True) if lock else teams).scalars()}
    members = (sa.select(TeamMember.team_id, TeamMember.created_at, User)
               .join(User, User.id == TeamMember.user_id)
               .where(TeamMember.team_id.in_(list(pool.teams)), User.deleted_at.is_(None),
                      User.role.in_(STAFF_ROLES))
               .order_by(User.id).execution_options(populate_existing=True))
    rows = db.session.execute(members.with_for_update(of=User, key_share=True) if lock else members).all()
    pool.users = {u.id: u for _, _, u in rows}
    loads = dict(db.session.execute(
        sa.select(Ticket.assignee_id, sa.func.count())
        .where(Ticket.assignee_id.in_(list(pool.users)), Ticket.status.in_(OPEN_STATUSES))
        .group_by(Ticket.assignee_id)
    ).all()) if pool.users else {}
    agents = {u.id: Agent(id=u.id, name=u.name, available=u.available, capacity=u.capacity,
                          skills=frozenset(u.skills or ()), open_tickets=loads.get(u.id, 0),
                          last_assigned_at=u.last_assigned_at) for u in pool.users.values()}
    pool.members = {t: [] for t in pool.teams}
    for team_id, member_since, user in rows:
        pool.members[team_id].append(agents[user.id])
        pool.joined[team_id, user.id] = member_since
    for team_id, members in pool.members.items():
        members.sort(key=lambda a, t=team_id: (pool.joined[t, a.id], str(a.id)))
    return pool


def pick_for(route: Route, pool: Pool) -> Pick:
    """Let the route's strategy pick among the locked team's members."""
    team = pool.teams.get(route.team_id)
    if team is None:
        return Pick(None, "The rule's team no longer exists.", [])
    members = pool.members[route.team_id]
    start = None
    if team.last_assigned_place is not None and team.last_assigned_user_id not in {a.id for a in members}:
        # The member who got the last ticket has left: go on from their place, not from the first member.
        last = (team.last_assigned_place, str(team.last_assigned_user_id))
        start = next((i for i, a in enumerate(members) if (pool.joined[team.id, a.id], str(a.id)) > last), 0)
    return choose(route.strategy, members, route.required_skills, team.last_assigned_user_id, start)


# --- assigning -------------------------------------------------------------------------------

def _waiting(ticket: Ticket) -> bool:
    return ticket.status == "new" and ticket.assignee_id is None


def _queue_order() -> list:
    return [Ticket.priority_rank.desc(), Ticket.created_at, Ticket.id]


def _counted() -> sa.ColumnElement[bool]:
    """A decision that changed something: an automatic one that handed the ticket to nobody did not."""
    return sa.or_(AssignmentDecision.source != "auto", AssignmentDecision.chosen_user_id.is_not(None))


def pinned_teams(ticket_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """Return the team of each ticket whose latest decision put it in a team by hand, unassigned.

    Such a ticket waits for that team (served least loaded), whatever the rules say. An automatic
    decision that handed it to nobody changed nothing, so it does not count as the latest: it
    took the place of the pin when a team was chosen before the ticket's first assignment job ran.
    """
    if not ticket_ids:
        return {}
    latest = (
        sa.select(AssignmentDecision.ticket_id, AssignmentDecision.source, AssignmentDecision.team_id,
                  AssignmentDecision.chosen_user_id)
        .where(AssignmentDecision.ticket_id.in_(ticket_ids), _counted())
        .order_by(AssignmentDecision.ticket_id, AssignmentDecision.created_at.desc())
        .distinct(AssignmentDecision.ticket_id)
    )
    return {row.ticket_id: row.team_id for row in db.session.execute(latest)
            if row.source == "manual" and row.team_id is not None and row.chosen_user_id is None}


def routes_for(tickets: list[Ticket], rules: list[RuleView]) -> dict[uuid.UUID, Route | None]:
    """Route waiting tickets: a team chosen by hand holds, otherwise the first matching rule."""
    pinned = pinned_teams([t.id for t in tickets])
    return {t.id: Route(team_id=pinned[t.id], strategy=FALLBACK_STRATEGY) if t.id in pinned
            else route_for(t, rules) for t in tickets}


def _queue_key(ticket: Ticket) -> tuple:
    return (-ticket.priority_rank, ticket.created_at, str(ticket.id))


@dataclass
class _Run:
    """One transaction's work: the locked pool, and the tickets whose live event goes out at the end."""

    pool: Pool
    changed: list[Ticket] = field(default_factory=list)

    def publish(self) -> None:
        """Flush once, then queue a live event per changed ticket (sent only if the commit happens)."""
        if not self.changed:
            return
        from app.tickets.schemas import TicketSchema

        db.session.flush()
        schema = TicketSchema()
        for ticket in self.changed:
            publish_after_commit(ticket.id, {"type": "ticket.updated", "ticket": schema.dump(ticket)})


def assign_new_ticket(ticket_id: uuid.UUID) -> AssignmentDecision | None:
    """Route a ticket and assign it (after any older queued ticket of its team); record why."""
    decisions = assign_new_tickets([ticket_id])
    return decisions[0] if decisions else None


def assign_new_tickets(ticket_ids: list[uuid.UUID]) -> list[AssignmentDecision]:
    """Route new tickets and assign them, queued tickets of their teams first; record each decision.

    Tickets already assigned (an earlier delivery, or by hand) are left alone, so this is safe to run
    again for the same ids. Returns the decisions recorded for `ticket_ids`.
    """
    tickets = db.session.execute(
        sa.select(Ticket).where(Ticket.id.in_(sorted(set(ticket_ids)))).order_by(Ticket.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).scalars().all()
    tickets = [t for t in tickets if _waiting(t)]
    if not tickets:
        return []
    rules = enabled_rules()
    routes = routes_for(tickets, rules)
    decided = [_record(t, None, Pick(None, "No enabled rule matches this ticket."), source="auto")
               for t in tickets if routes[t.id] is None]
    routed = sorted((t for t in tickets if routes[t.id] is not None), key=_queue_key)
    if not routed:
        return decided
    new_ids = {t.id for t in routed}
    last = {routes[t.id].team_id: t for t in routed}  # each team's last new ticket in the queue's order
    team_ids = set(last)
    # Queued tickets ahead of any new one of their team are served in one queue with them, each team's
    # read on its own: one read for all let a busy team's backlog fill it and hide another's.
    ahead = [queued for team_id in sorted(team_ids) for queued in db.session.execute(
        sa.select(Ticket)
        .where(Ticket.team_id == team_id, Ticket.status == "new", Ticket.assignee_id.is_(None),
               Ticket.id.not_in([t.id for t in tickets]),
               sa.tuple_(-Ticket.priority_rank, Ticket.created_at, Ticket.id)
               < (-last[team_id].priority_rank, last[team_id].created_at, last[team_id].id))
        .order_by(*_queue_order()).limit(AHEAD_BATCH)
        .with_for_update(skip_locked=True, key_share=True).execution_options(populate_existing=True)
    ).scalars()]
    run = _Run(lock_pool(team_ids))
    routes |= {t: r for t, r in routes_for(ahead, rules).items() if r is not None and r.team_id in team_ids}
    for ticket in sorted([*ahead, *routed], key=_queue_key):
        route = routes.get(ticket.id)
        if ticket.id not in new_ids:  # queued: handed out if someone is free, else left as it is
            if route is not None and run.pool.has_room() and (pick := pick_for(route, run.pool)).agent is not None:
                _assign(run, ticket, route, pick, from_queue=True)
            continue
        pick = pick_for(route, run.pool)
        if pick.agent is not None:
            decided.append(_assign(run, ticket, route, pick, from_queue=False))
            continue
        if ticket.team_id != route.team_id and route.team_id in run.pool.teams:
            _route_to_team(run, ticket, route.team_id)
        decided.append(_record(ticket, route, pick, source="auto"))
    run.publish()
    return decided


def drain() -> int:
    """Hand out queued tickets, highest priority then oldest first; return how many were assigned.

    The queue is read `DRAIN_BATCH` tickets at a time, and read on while someone has room, up to
    `DRAIN_BATCHES` reads: tickets nobody free can take (no rule matches them, or their team is
    busy) do not hide those behind them. Past that, reads keep to the tickets already waiting in a
    team with room, `DRAIN_BATCHES` more: a backlog of a busy team, however long, hides no free
    team's ticket. The first read also moves waiting tickets to the team their rule now names.
    Only the tickets that are handed out or moved are locked.
    """
    queued = _queued(None)
    if not queued:  # the common case, on every edit: nothing waits, so no lock is taken
        return 0
    rules = enabled_rules()
    routes = routes_for(queued, rules)
    # The teams the first read moves tickets to are locked too, as those it hands tickets out in.
    moving = {routes[t.id].team_id for t in queued if routes[t.id] is not None and t.team_id != routes[t.id].team_id}
    run = _Run(lock_pool(_teams_with_room() | moving))
    assigned = 0
    for read in range(2 * DRAIN_BATCHES):
        # The read's place in the queue, as read: locking below refreshes these objects.
        place = (-queued[-1].priority_rank, queued[-1].created_at, queued[-1].id) if queued else None
        wanted = [t.id for t in queued if routes[t.id] is not None and routes[t.id].team_id in run.pool.teams and (
            (read == 0 and t.team_id != routes[t.id].team_id) or run.pool.has_room())]
        locked = db.session.execute(
            sa.select(Ticket).where(Ticket.id.in_(wanted), Ticket.status == "new", Ticket.assignee_id.is_(None))
            .order_by(*_queue_order()).with_for_update(skip_locked=True, key_share=True)
            .execution_options(populate_existing=True)
        ).scalars().all() if wanted else []
        routes = routes_for(locked, rules)  # as they are now, under lock
        for ticket in locked:
            route = routes[ticket.id]
            if route is None or route.team_id not in run.pool.teams:
                continue
            pick = pick_for(route, run.pool) if run.pool.has_room() else None
            if pick is not None and pick.agent is not None:
                _assign(run, ticket, route, pick, from_queue=True)
                assigned += 1
            elif ticket.team_id != route.team_id:
                _route_to_team(run, ticket, route.team_id)
        if len(queued) < DRAIN_BATCH or not run.pool.has_room() or read + 1 == 2 * DRAIN_BATCHES:
            break
        queued = _queued(place, run.pool.teams_with_room() if read + 1 >= DRAIN_BATCHES else None)
        routes = routes_for(queued, rules)
    run.publish()
    return assigned


def _queued(after: tuple | None, teams: list[uuid.UUID] | None = None) -> list[Ticket]:
    """Read the next `DRAIN_BATCH` waiting tickets in the queue's order, after the place `after` (unlocked);
    with `teams`, only those waiting in one of them."""
    stmt = sa.select(Ticket).where(Ticket.status == "new", Ticket.assignee_id.is_(None))
    if teams is not None:
        stmt = stmt.where(Ticket.team_id.in_(teams))
    if after is not None:
        stmt = stmt.where(sa.tuple_(-Ticket.priority_rank, Ticket.created_at, Ticket.id) > after)
    return list(db.session.execute(stmt.order_by(*_queue_order()).limit(DRAIN_BATCH)).scalars())


def _teams_with_room() -> set[uuid.UUID]:
    """Return the teams with a member free to take a ticket now, read without a lock (`drain` locks them)."""
    return set(lock_pool(db.session.execute(sa.select(Team.id)).scalars(), lock=False).teams_with_room())


def _route_to_team(run: _Run, ticket: Ticket, team_id: uuid.UUID) -> None:
    """Keep a waiting ticket in the team its rule names, so the team's queue shows it: a change of the
    ticket like any other, audited and announced (the event feed and webhooks learn its team)."""
    before = ticket.team_id
    ticket.team_id = team_id
    ticket.updated_at = datetime.now(UTC)
    audit.record("ticket", ticket.id, "updated", before={"team_id": before}, after={"team_id": team_id})
    emit("ticket.updated", {"ticket_id": str(ticket.id), "fields": ["team_id"]},
         event_data(ticket, changes=["team_id"]))
    run.changed.append(ticket)


def _assign(run: _Run, ticket: Ticket, route: Route, pick: Pick, from_queue: bool) -> AssignmentDecision:
    agent = pick.agent
    assert agent is not None
    now = datetime.now(UTC)
    before = {"assignee_id": ticket.assignee_id, "team_id": ticket.team_id, "status": ticket.status}
    ticket.assignee_id = agent.id
    ticket.team_id = route.team_id
    if ticket.status == "new":
        ticket.status = "open"
    ticket.updated_at = now
    agent.open_tickets += 1
    agent.last_assigned_at = now
    run.pool.users[agent.id].last_assigned_at = now
    run.pool.teams[route.team_id].last_assigned_user_id = agent.id
    run.pool.teams[route.team_id].last_assigned_place = run.pool.joined[route.team_id, agent.id]
    reason = ("From the unassigned queue. " if from_queue else "") + pick.reason
    decision = _record(ticket, route, Pick(agent, reason, pick.candidates), source="auto")
    audit.record("ticket", ticket.id, "assigned", before=before,
                 after={"assignee_id": ticket.assignee_id, "team_id": ticket.team_id, "status": ticket.status})
    emit("ticket.assigned", {"ticket_id": str(ticket.id), "assignee_id": str(agent.id),
                             "team_id": str(route.team_id), "source": "auto"}, event_data(ticket, source="auto"))
    run.changed.append(ticket)
    return decision


def _record(ticket: Ticket, route: Route | None, pick: Pick, source: str,
            actor_id: uuid.UUID | None = None) -> AssignmentDecision:
    decision = AssignmentDecision(
        id=uuid.uuid4(), ticket_id=ticket.id, source=source,
        rule_id=route.rule_id if route else None, rule_name=route.rule_name if route else None,
        strategy=route.strategy if route else None, team_id=route.team_id if route else None,
        candidates=pick.candidates, chosen_user_id=pick.agent.id if pick.agent else None,
        reason=pick.reason, actor_id=actor_id, created_at=datetime.now(UTC),
    )
    db.session.add(decision)
    return decision


def record_manual_assignment(ticket: Ticket, assignee_id: uuid.UUID | None, team_id: uuid.UUID | None,
                             actor: Actor | None, previous_assignee_id: uuid.UUID | None = None) -> AssignmentDecision:
    """Record that `actor` set the ticket's assignee and team by hand (call after changing them).

    For `PATCH /tickets/{id}` and the UI: the caller validates and sets `assignee_id`, `team_id`
    and the status (`new` -> `open` when an assignee is set), then calls this in the same
    transaction. When an agent loses the ticket, or it goes back to the queue, the queue drains.
    """
    who = "an API key" if actor is None or actor.user_id is None else "a user"
    kept = assignee_id is not None and assignee_id == previous_assignee_id  # only the team moved
    reason = (f"Moved to another team by hand by {who}; the assignee stays." if kept
              else f"Assigned by hand by {who}." if assignee_id is not None
              else f"Put in its team's queue by hand by {who}." if team_id is not None
              else f"Assignee and team removed by hand by {who}.")
    decision = AssignmentDecision(
        id=uuid.uuid4(), ticket_id=ticket.id, source="manual", strategy="manual", team_id=team_id,
        candidates=[], chosen_user_id=assignee_id, reason=reason,
        actor_id=actor.user_id if actor else None, created_at=datetime.now(UTC),
    )
    db.session.add(decision)
    if assignee_id is not None and not kept:  # a team move is no new assignment to announce
        emit("ticket.assigned", {"ticket_id": str(ticket.id), "assignee_id": str(assignee_id),
                                 "team_id": str(team_id) if team_id else None, "source": "manual"},
             event_data(ticket, source="manual"))
    if (previous_assignee_id is not None and previous_assignee_id != assignee_id) or assignee_id is None:
        emit(QUEUE_CHANGED, {"ticket_id": str(ticket.id)})
    return decision


LEFT_REASON = "Taken from its assignee, who is no longer an agent of this organization."


def record_release(ticket: Ticket, previous_assignee_id: uuid.UUID, actor: Actor | None) -> AssignmentDecision:
    """Record that a ticket was taken from an assignee who left (call after clearing its assignee).

    A ticket whose team was chosen by hand (the latest decision that counts is manual, for this team)
    keeps waiting for that team, as before its assignee left. Any other is recorded as an automatic
    decision that hands it to nobody, which `pinned_teams` passes over, so the rules route it again,
    required skills and all. The queue drains.
    """
    latest = db.session.execute(
        sa.select(AssignmentDecision.source, AssignmentDecision.team_id)
        .where(AssignmentDecision.ticket_id == ticket.id, _counted())
        .order_by(AssignmentDecision.created_at.desc()).limit(1)).first()
    by_hand = (ticket.team_id is not None and latest is not None and latest.source == "manual"
               and latest.team_id == ticket.team_id)
    decision = AssignmentDecision(
        id=uuid.uuid4(), ticket_id=ticket.id, source="manual" if by_hand else "auto",
        strategy="manual" if by_hand else None, team_id=ticket.team_id, candidates=[], chosen_user_id=None,
        reason=LEFT_REASON + (" It waits for the team chosen for it by hand." if by_hand else ""),
        actor_id=actor.user_id if actor else None, created_at=datetime.now(UTC))
    db.session.add(decision)
    emit(QUEUE_CHANGED, {"ticket_id": str(ticket.id), "released_from": str(previous_assignee_id)})
    return decision


@dataclass(frozen=True)
class SampleTicket:
    """A ticket that does not exist, for a dry run."""

    title: str
    description: str = ""
    priority: str = "normal"
    category: str | None = None
    tags: list[str] = field(default_factory=list)
    team_id: uuid.UUID | None = None


def dry_run(sample: SampleTicket, rule_id: uuid.UUID | None = None) -> dict[str, Any]:
    """Say where a ticket like `sample` would go now, and why, without assigning or locking anything.

    Every rule is listed in the order it is tried, with whether it matches; the first enabled
    match picks the team, and the team's members are weighed exactly as the worker would. With
    `rule_id`, the answer also says whether that rule matches and whether it would be the one.
    """
    rules = list(db.session.execute(rules_query()).scalars())
    if rule_id is not None and rule_id not in {r.id for r in rules}:
        raise NotFound("No such assignment rule.")
    found = keywords_found(sample, [r.conditions or {} for r in rules])
    tried = [{"id": r.id, "name": r.name, "position": r.position, "enabled": r.enabled,
              "matches": rule_matches(r.conditions or {}, sample, found)} for r in rules]
    route = route_for(sample, [RuleView.of(r) for r in rules if r.enabled], found)
    answer: dict[str, Any] = {"rules": tried, "route": None, "chosen_user_id": None, "candidates": [],
                              "reason": "No enabled rule matches; the ticket would wait unassigned.",
                              "queued_ahead": 0}
    if rule_id is not None:
        mine = next(t for t in tried if t["id"] == rule_id)
        answer["tested_rule"] = {**mine, "decides": route is not None and route.rule_id == rule_id}
    if route is None:
        return answer
    pool = lock_pool([route.team_id], lock=False)
    pick = pick_for(route, pool)
    team = pool.teams.get(route.team_id)
    answer.update(
        route={"rule_id": route.rule_id, "rule_name": route.rule_name, "team_id": route.team_id,
               "team_name": team.name if team else None, "strategy": route.strategy,
               "required_skills": sorted(route.required_skills)},
        chosen_user_id=pick.agent.id if pick.agent else None, candidates=pick.candidates, reason=pick.reason,
        queued_ahead=db.session.execute(
            sa.select(sa.func.count()).select_from(Ticket)
            .where(Ticket.team_id == route.team_id, Ticket.status == "new", Ticket.assignee_id.is_(None),
                   Ticket.priority_rank >= PRIORITY_RANKS[sample.priority])).scalar_one())
    return answer


def explain(actor: Actor, ticket_id: uuid.UUID) -> dict[str, Any]:
    """Return why a ticket `actor` can see is assigned as it is: the latest decision, then the history."""
    from app.tickets.services import ticket_for

    ticket = ticket_for(actor, ticket_id)
    history = decisions_for(ticket.id)
    return {"ticket_id": ticket.id, "assignee_id": ticket.assignee_id, "team_id": ticket.team_id,
            "status": ticket.status, "queued": _waiting(ticket), "decision": history[0] if history else None,
            "history": history}


def decisions_for(ticket_id: uuid.UUID, limit: int = 50) -> list[AssignmentDecision]:
    """Return a ticket's decisions, newest first."""
    return list(db.session.execute(
        sa.select(AssignmentDecision).where(AssignmentDecision.ticket_id == ticket_id)
        .order_by(AssignmentDecision.created_at.desc(), AssignmentDecision.id).limit(limit)
    ).scalars())
