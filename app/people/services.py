"""People operations shared by the API, the UI, the CLI and the seed."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from app import audit
from app.auth import key_cache
from app.auth.actor import SYSTEM, Actor, current_actor_or_none
from app.auth.keys import revoke_keys
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.extensions import db
from app.outbox import emit
from app.pagination import SortKey, page
from app.people.models import ROLES, STAFF_ROLES, Team, TeamMember, User
from app.people.passwords import check_password, hash_password, needs_rehash
from tenants import ApiKey, current_tenant

USER_FIELDS = ("email", "name", "role", "skills", "capacity", "available")
SELF_EDITABLE = frozenset({"name", "password", "available"})
USER_KEYS = [SortKey(User.created_at, kind="datetime"), SortKey(User.id, kind="uuid")]
TEAM_KEYS = [SortKey(Team.name), SortKey(Team.id, kind="uuid")]


def get_user(user_id: uuid.UUID, lock: bool = False) -> User | None:
    """Return the active user with this id, or None; with `lock`, their row read afresh and share-locked
    (a leaving under way, which locks it, is waited for and seen)."""
    if lock:
        user = db.session.get(User, user_id, with_for_update={"read": True}, populate_existing=True)
    else:
        user = db.session.get(User, user_id)
    return None if user is None or user.deleted_at is not None else user


def user_or_404(user_id: uuid.UUID) -> User:
    """Return the active user with this id, or raise NotFound."""
    user = get_user(user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


def user_for(actor: Actor, user_id: uuid.UUID) -> User:
    """Return a user `actor` may read: staff read anyone, others only themselves."""
    if not actor.is_staff and actor.user_id != user_id:
        raise NotFound("No such user.")
    return user_or_404(user_id)


def list_users(role: str | None, limit: int, cursor: str | None) -> tuple[list[User], str | None]:
    """Return a page of active users, oldest first, optionally of one role."""
    stmt = sa.select(User).where(User.deleted_at.is_(None))
    if role:
        stmt = stmt.where(User.role == role)
    return page(db.session, stmt, USER_KEYS, limit, cursor)


def users_by_id(user_ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, User]:
    """Return the users with these ids, deleted ones too (a message keeps its author's name), in one query."""
    ids = {i for i in user_ids if i is not None}
    if not ids:
        return {}
    return {u.id: u for u in db.session.execute(sa.select(User).where(User.id.in_(ids))).scalars()}


def staff_users(limit: int = 500) -> list[User]:
    """Return the active agents and admins by name, the people a ticket can be assigned to."""
    return list(db.session.execute(
        sa.select(User).where(User.role.in_(STAFF_ROLES), User.deleted_at.is_(None))
        .order_by(sa.func.lower(User.name), User.id).limit(limit)
    ).scalars())


def teams_by_name(limit: int = 500) -> list[Team]:
    """Return the teams by name, the ones a ticket can be put in."""
    return list(db.session.execute(sa.select(Team).order_by(sa.func.lower(Team.name), Team.id).limit(limit)).scalars())


def user_by_email(email: str) -> User | None:
    """Return the live user with this email, case folded in SQL as the unique index folds it (Python's
    `lower()` differs for some letters: "İ")."""
    return db.session.execute(
        sa.select(User).where(sa.func.lower(User.email) == sa.func.lower(email), User.deleted_at.is_(None))
    ).scalar_one_or_none()


def authenticate(email: str, password: str) -> User | None:
    """Return the active user with this email and password, or None, in the same time either way.

    A hash made with older parameters is replaced now that the password is known.
    """
    user = user_by_email(email)
    if not check_password(user.password_hash if user else None, password) or user is None:
        return None
    if needs_rehash(user.password_hash):
        # Only over the hash just checked: a password changed meanwhile was put back by the old one's sign-in.
        db.session.execute(sa.update(User).where(User.id == user.id, User.password_hash == user.password_hash)
                           .values(password_hash=hash_password(password)),
                           execution_options={"synchronize_session": False})
    return user


def _snapshot(user: User) -> dict[str, Any]:
    return {f: getattr(user, f) for f in USER_FIELDS}


def create_user(email: str, name: str, role: str, password: str | None = None,
                skills: list[str] | None = None, capacity: int | None = None,
                available: bool = True) -> User:
    """Add a user; a taken email raises Conflict."""
    check_plain(email)
    if user_by_email(email) is not None:
        raise Conflict("A user with this email already exists.")
    user = User(id=uuid.uuid4(), email=email, name=name, role=role, skills=sorted(set(skills or [])),
                capacity=capacity, available=available,
                password_hash=hash_password(password) if password else None)
    db.session.add(user)
    _flush_unique("A user with this email already exists.")
    audit.record("user", user.id, "created", after=_snapshot(user))
    return user


def check_plain(email: str, field: str = "email") -> None:
    """Refuse a new address written in compatibility letters (fullwidth ones, ligatures, the Kelvin sign):
    uniqueness folds only case, so a fullwidth `a` made a second person beside `admin@...`, shown
    everywhere with the same address. Stored ones stay as they are: a form sending one back unchanged
    is no new address."""
    if unicodedata.normalize("NFKC", email) != email:  # decomposed letters too: stored, they would not match
        raise Invalid.field(field, "Write the address in plain letters (not fullwidth, say).",
                            "The request has invalid fields.")
    if any(_mixes_scripts(part) for part in re.split(r"[@.]", email)):
        raise Invalid.field(field, "Write each part of the address in one alphabet (a Cyrillic letter among "
                                   "Latin ones, say, makes a lookalike of another address).",
                            "The request has invalid fields.")


# Scripts a part of an address may mix, as Unicode's "highly restrictive" level allows (UTS #39): Latin
# with the scripts Japanese, Chinese or Korean are written in. Any other mix is a lookalike's mark.
_WRITTEN_TOGETHER = ({"LATIN", "CJK", "HIRAGANA", "KATAKANA"}, {"LATIN", "CJK", "BOPOMOFO"},
                     {"LATIN", "CJK", "HANGUL"})


def _mixes_scripts(part: str) -> bool:
    """Tell whether a part of an address (its local part, a label of its domain) mixes alphabets: "admin"
    with a Cyrillic first letter was a second admin beside "admin", shown everywhere as the same. Letters
    only: digits and marks belong to every script. A script is read from the letter's Unicode name
    ("CYRILLIC SMALL LETTER A")."""
    scripts = {unicodedata.name(ch, "?").split()[0] for ch in part if ch.isalpha() and not ch.isascii()}
    if any(ch.isascii() and ch.isalpha() for ch in part):
        scripts.add("LATIN")
    return len(scripts) > 1 and not any(scripts <= allowed for allowed in _WRITTEN_TOGETHER)


def change_user(actor: Actor, user_id: uuid.UUID, changes: dict[str, Any]) -> User:
    """Apply `actor`'s changes to a user: admins change anyone, others their name, password, availability."""
    user = user_for(actor, user_id)  # a requester learns nothing of other users, not even that they exist
    if "password" in changes and actor.user_id == user_id and ROLES.index(actor.role) > ROLES.index(user.role):
        # A key acting below its user's role would otherwise sign in as the user, with the full role.
        raise Forbidden("A key with a lesser role than its user cannot change the user's password.")
    if actor.role != "admin":
        if actor.user_id != user_id:
            raise Forbidden("Only admins can change other users.")
        if set(changes) - SELF_EDITABLE:
            raise Forbidden("You may change only your name, password and availability.")
    return update_user(user, changes)


def update_user(user: User, changes: dict[str, Any]) -> User:
    """Apply changes to a user; freeing capacity lets the unassigned queue drain."""
    before = _snapshot(user)
    if changes.get("email", user.email) != user.email:
        check_plain(changes["email"])
        holder = user_by_email(changes["email"])  # the user's own row when only the case changes
        if holder is not None and holder.id != user.id:
            raise Conflict("A user with this email already exists.")
    if changes.get("role", user.role) != "admin" and user.role == "admin":
        _ensure_another_admin(user)
    if user.is_staff and changes.get("role", user.role) not in STAFF_ROLES:
        _release_tickets(user)
        _leave_teams(user)
    for field in USER_FIELDS:
        if field in changes:
            value = changes[field]
            setattr(user, field, sorted(set(value)) if field == "skills" else value)
    if "password" in changes:
        user.password_hash = hash_password(changes["password"])
        sign_out_everywhere(user)
    if before["role"] == "admin" and user.role != "admin":
        # keys they made for others were made with a power they no longer have
        revoke_keys(current_tenant().id, ApiKey.created_by == user.id, ApiKey.user_id != user.id)
    if before["role"] != user.role or "password" in changes:
        # the user's keys act with the new role from the next request on; their open sockets re-check
        key_cache.change_on_commit()
    _flush_unique("A user with this email already exists.")
    after = _snapshot(user)
    if after != before:
        audit.record("user", user.id, "updated", before=before, after=after)
        emit("agent.changed", {"user_id": str(user.id)})
    return user


def delete_user(user: User) -> None:
    """Deactivate a user: sign them out, revoke their keys, take them off every team and their tickets."""
    if user.role == "admin":
        _ensure_another_admin(user)
    if user.is_staff:
        _release_tickets(user)
    user.deleted_at = datetime.now(UTC)
    user.available = False
    sign_out_everywhere(user)
    db.session.execute(sa.delete(TeamMember).where(TeamMember.user_id == user.id))
    revoke_keys(current_tenant().id, sa.or_(ApiKey.user_id == user.id, ApiKey.created_by == user.id))
    audit.record("user", user.id, "deleted", before=_snapshot(user))


def sign_out_everywhere(user: User) -> None:
    """End every session of the user's at this transaction's commit: their session version goes up in
    SQL, so two at once both count (each read the same version, and the second wrote back the first's)."""
    user.session_version = User.session_version + 1


def _leave_teams(user: User) -> None:
    """Take someone who stops being an agent off their teams, each as a removal by the actor: only
    agents and admins may be members, and promoted again they join no team they were not added to."""
    left = db.session.execute(
        sa.delete(TeamMember).where(TeamMember.user_id == user.id).returning(TeamMember.team_id)).scalars()
    for team_id in sorted(left):
        audit.record("team", team_id, "member_removed", before={"user_id": user.id})


def _release_tickets(user: User) -> None:
    """Take someone who stops being an agent off their unsolved tickets, each as an edit by the actor.

    An `open` one goes back to the queue, where the rules route it again (so a rule's required
    skills still hold; one whose team a person chose waits for that team, `assignment.services.
    record_release`) and assignment hands it to someone else; a `pending` one waits for its
    requester, unassigned, for whoever picks it up next. Solved tickets keep their assignee, as the
    record of who solved them, until one is reopened (`tickets.services._assignee_left`).
    """
    from app.tickets import services as tickets
    from app.tickets.models import Ticket
    from app.tickets.schemas import dump_ticket

    actor = current_actor_or_none() or SYSTEM
    unsolved = (sa.select(Ticket.id).where(Ticket.assignee_id == user.id, Ticket.status.in_(("open", "pending")))
                .order_by(Ticket.id).with_for_update())
    # Their tickets, locked as they are read (one taken over or solved meanwhile is not theirs to
    # release); then their row, as assignment locks it (`FOR NO KEY UPDATE`), so an assignment under way
    # finishes first; then their tickets again, that one's among them, and any a reopen gave back to
    # them meanwhile (a reopen holds its ticket, then reads them: `tickets.services._assignee_left`).
    # Their row is not held while the first read waits, so a reopen waiting for it cannot deadlock this.
    db.session.scalars(unsolved).all()
    db.session.execute(sa.select(User.id).where(User.id == user.id).with_for_update(key_share=True))
    held = db.session.scalars(unsolved).all()
    for ticket_id in held:
        ticket = tickets.update_ticket(actor, ticket_id, {"assignee_id": None}, leaving=True)
        tickets.announce(ticket, dump_ticket(ticket))


def _ensure_another_admin(user: User) -> None:
    """Refuse to remove the last admin. Removals of admins take one lock of the organization's first (a
    transaction-level advisory lock), so two admins demoting or removing each other at once are decided
    one after the other, each counting the admins the other left.

    Not the admins' rows: those locked before the leaving admin's tickets were read inverted the order a
    release takes (their tickets, then them), and a reopen of one of their tickets deadlocked with it.
    """
    db.session.execute(sa.select(sa.func.pg_advisory_xact_lock(
        sa.func.hashtext(f"{current_tenant().schema}:admins"))))
    admins = db.session.scalars(sa.select(User.id).where(User.role == "admin", User.deleted_at.is_(None))).all()
    actor = current_actor_or_none()
    if actor is not None and actor.user_id is not None and actor.user_id not in admins:
        # demoted or removed by another admin while this request was on its way: the count above was theirs
        raise Forbidden("Only admins can change other users.")
    if not any(admin != user.id for admin in admins):
        raise Conflict("An organization needs at least one admin.")


def _flush_unique(message: str) -> None:
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:
        raise Conflict(message) from exc


def team_member_ids(team_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Return the member ids of each team, in one query."""
    members: dict[uuid.UUID, list[uuid.UUID]] = {t: [] for t in team_ids}
    if team_ids:
        rows = db.session.execute(
            sa.select(TeamMember.team_id, TeamMember.user_id)
            .where(TeamMember.team_id.in_(team_ids)).order_by(TeamMember.created_at)
        )
        for team_id, user_id in rows:
            members[team_id].append(user_id)
    return members


def team_or_404(team_id: uuid.UUID) -> Team:
    """Return the team with this id, or raise NotFound."""
    team = db.session.get(Team, team_id)
    if team is None:
        raise NotFound("No such team.")
    return team


def team_view(team: Team, member_ids: list[uuid.UUID] | None = None) -> dict[str, Any]:
    """Return a team with its member ids (read in one query unless given)."""
    if member_ids is None:
        member_ids = team_member_ids([team.id])[team.id]
    return {"id": team.id, "name": team.name, "description": team.description, "member_ids": member_ids,
            "created_at": team.created_at, "updated_at": team.updated_at}


def list_teams(limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Return a page of teams by name, each with its member ids."""
    teams, next_cursor = page(db.session, sa.select(Team), TEAM_KEYS, limit, cursor)
    members = team_member_ids([t.id for t in teams])
    return [team_view(t, members[t.id]) for t in teams], next_cursor


def create_team(name: str, description: str | None = None) -> Team:
    team = Team(id=uuid.uuid4(), name=name, description=description)
    db.session.add(team)
    _flush_unique("A team with this name already exists.")
    audit.record("team", team.id, "created", after={"name": name, "description": description})
    return team


def update_team(team: Team, changes: dict[str, Any]) -> Team:
    before = {"name": team.name, "description": team.description}
    for field in ("name", "description"):
        if field in changes:
            setattr(team, field, changes[field])
    _flush_unique("A team with this name already exists.")
    audit.record("team", team.id, "updated", before=before,
                 after={"name": team.name, "description": team.description})
    return team


def delete_team(team: Team) -> None:
    """Delete a team; its tickets lose their team here, not by the foreign key's SET NULL, so each
    moves its version (the ETag) and `updated_at`, and is audited and announced as a change."""
    from app.assignment.models import AssignmentRule
    from app.tickets import services as tickets

    # The team's row first: a ticket being moved into it waits, then finds it gone (409), instead of
    # landing between the UPDATE below and the DELETE, which would clear it without a new version.
    # A rule being pointed at it waits too, then finds it gone; rules already routing to it refuse
    # the deletion (their foreign key would delete them silently, with no audit entry).
    db.session.execute(sa.select(Team.id).where(Team.id == team.id).with_for_update())
    routing = db.session.execute(sa.select(AssignmentRule.name).where(AssignmentRule.team_id == team.id)
                                 .order_by(AssignmentRule.position, AssignmentRule.name)).scalars().all()
    if routing:
        names = ", ".join(routing[:5]) + (f" and {len(routing) - 5} more" if len(routing) > 5 else "")
        raise Conflict(f"Assignment rules route tickets to this team ({names}); change or delete them first.")
    tickets.clear_team(team.id)
    audit.record("team", team.id, "deleted", before={"name": team.name})
    db.session.delete(team)


def add_member(team: Team, user: User) -> bool:
    """Put a staff user on a team; return False if they were on it already (or were put there meanwhile)."""
    # Their role as it stands once a demotion under way has committed (it locks the row before it takes
    # them off their teams): one that starts later waits for this insert, then takes them off again.
    role = db.session.execute(sa.select(User.role).where(User.id == user.id, User.deleted_at.is_(None))
                              .with_for_update(read=True)).scalar()
    if role not in STAFF_ROLES:
        raise Invalid.field("user_id", "Only agents and admins can be team members.")
    added = db.session.execute(
        insert(TeamMember).values(team_id=team.id, user_id=user.id).on_conflict_do_nothing()
        .returning(TeamMember.user_id)).first()
    if added is None:
        return False
    audit.record("team", team.id, "member_added", after={"user_id": user.id})
    emit("agent.changed", {"user_id": str(user.id)})
    return True


def remove_member(team: Team, user_id: uuid.UUID) -> None:
    """Take a user off a team; raise NotFound if they were not on it."""
    deleted = db.session.execute(
        sa.delete(TeamMember).where(TeamMember.team_id == team.id, TeamMember.user_id == user_id)
    ).rowcount
    if not deleted:
        raise NotFound("That user is not on this team.")
    audit.record("team", team.id, "member_removed", before={"user_id": user_id})
