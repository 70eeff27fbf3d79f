"""Check-then-act races in people and teams, each shown by holding two real requests at the same
point (a barrier after the service's own check) and letting both commit.

- "An organization needs at least one admin" is decided under one lock of the organization's, so
  two admins who remove or demote each other at the same moment cannot both succeed: the second
  finds itself no admin (403).
- `PUT /teams/{id}/members/{user_id}` is idempotent even when two arrive at once.
- A write that loses a race at the database (a unique row inserted, a referenced row deleted in
  between) answers 409 to send again; any other constraint failure stays a 500.

The barrier has a timeout: a request that waits on the other's lock before reaching it lets the
first go on after that timeout.
"""

from __future__ import annotations

import contextlib
import threading
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from app.extensions import db
from app.people import services as people
from app.people.models import TeamMember, User

HOLD = 3.0


def _run_both(app, calls):
    answers: list[tuple[int, object]] = [None, None]

    def run(i, method, path, key):
        client = app.test_client()
        resp = getattr(client, method)(path, headers={"Authorization": f"Bearer {key}"})
        answers[i] = (resp.status_code, resp.get_json(silent=True))

    workers = [threading.Thread(target=run, args=(i, *call)) for i, call in enumerate(calls)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    return answers


def _held(original, barrier):
    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(HOLD)
        return result
    return wrapper


def test_two_admins_deactivating_each_other_at_once_leave_one_admin(app, tenant, in_tenant, monkeypatch):
    second = tenant.user("admin")
    second_key = tenant.key_for(second).key
    barrier = threading.Barrier(2)
    monkeypatch.setattr(people, "_ensure_another_admin", _held(people._ensure_another_admin, barrier))

    answers = _run_both(app, [
        ("delete", f"/api/v1/users/{second['id']}", tenant.key),       # the first admin removes the second
        ("delete", f"/api/v1/users/{tenant.admin_id}", second_key),    # and the second removes the first
    ])

    with in_tenant(tenant) as session:
        admins = session.execute(sa.select(sa.func.count()).select_from(User)
                                 .where(User.role == "admin", User.deleted_at.is_(None))).scalar()
    assert sorted(a[0] for a in answers) == [204, 403], answers  # the second is no admin by the time it counts
    assert admins == 1, f"the organization has {admins} active admins after {answers}"


def test_two_concurrent_puts_of_one_team_member_both_answer_200(app, tenant, monkeypatch):
    agent = tenant.user("agent")
    team = tenant.api.post("/api/v1/teams", json={"name": "Billing"}).get_json()
    barrier = threading.Barrier(2)
    monkeypatch.setattr(people, "add_member", _held(people.add_member, barrier))

    path = f"/api/v1/teams/{team['id']}/members/{agent['id']}"
    answers = _run_both(app, [("put", path, tenant.key), ("put", path, tenant.key)])

    assert [a[0] for a in answers] == [200, 200], answers
    members = tenant.api.get(f"/api/v1/teams/{team['id']}").get_json()["member_ids"]
    assert members == [agent["id"]]


def test_two_admins_demoting_each_other_at_once_leave_one_admin(app, tenant, in_tenant, monkeypatch):
    second = tenant.user("admin")
    second_key = tenant.key_for(second).key
    barrier = threading.Barrier(2)
    monkeypatch.setattr(people, "_ensure_another_admin", _held(people._ensure_another_admin, barrier))

    def demote(user_id, key):
        client = app.test_client()
        resp = client.patch(f"/api/v1/users/{user_id}", json={"role": "agent"},
                            headers={"Authorization": f"Bearer {key}"})
        return resp.status_code

    answers: list[int] = []
    workers = [threading.Thread(target=lambda u=u, k=k: answers.append(demote(u, k)))
               for u, k in ((second["id"], tenant.key), (tenant.admin_id, second_key))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)

    with in_tenant(tenant) as session:
        admins = session.execute(sa.select(sa.func.count()).select_from(User)
                                 .where(User.role == "admin", User.deleted_at.is_(None))).scalar()
    assert sorted(answers) == [200, 403], answers
    assert admins == 1


@pytest.mark.parametrize(("broken", "status"), [
    ("a team that is gone", 409),      # foreign key: the team was deleted between the check and the write
    ("no user at all", 500),           # not null: a bug, not a race
])
def test_a_write_losing_a_race_at_the_database_asks_to_send_again(tenant, monkeypatch, broken, status):
    agent = tenant.user("agent")
    team = tenant.api.post("/api/v1/teams", json={"name": "Billing"}).get_json()

    def racing(team_, user):
        values = {"team_id": uuid.uuid4(), "user_id": user.id} if broken == "a team that is gone" else \
            {"team_id": team_.id, "user_id": None}
        db.session.execute(insert(TeamMember).values(**values))
        return True

    monkeypatch.setattr(people, "add_member", racing)
    resp = tenant.api.put(f"/api/v1/teams/{team['id']}/members/{agent['id']}")
    assert resp.status_code == status
    assert set(resp.get_json()) >= {"code", "status", "message"}
    assert tenant.api.get(f"/api/v1/teams/{team['id']}").get_json()["member_ids"] == []


def test_a_member_added_while_they_are_demoted_is_taken_off_again(app, tenant, monkeypatch):
    """The addition checked the role, then inserted; a demotion between the two left a requester on the team."""
    agent = tenant.user("agent")
    team = tenant.api.post("/api/v1/teams", json={"name": "Billing"}).get_json()
    checked, go_on = threading.Event(), threading.Event()
    real_insert = people.insert

    def held_insert(*args, **kwargs):
        checked.set()
        go_on.wait(10)
        return real_insert(*args, **kwargs)

    monkeypatch.setattr(people, "insert", held_insert)

    def call(method: str, path: str, **body) -> int:
        return getattr(app.test_client(), method)(path, json=body or None,
                                                  headers={"Authorization": f"Bearer {tenant.key}"}).status_code

    answers: dict[str, int] = {}
    adding = threading.Thread(target=lambda: answers.update(
        add=call("put", f"/api/v1/teams/{team['id']}/members/{agent['id']}")))
    demoting = threading.Thread(target=lambda: answers.update(
        demote=call("patch", f"/api/v1/users/{agent['id']}", role="requester")))
    adding.start()
    assert checked.wait(10)
    demoting.start()
    demoting.join(1)  # it waits for the addition to end, or (before) went through meanwhile
    go_on.set()
    for worker in (adding, demoting):
        worker.join(30)
    assert answers == {"add": 200, "demote": 200}
    assert tenant.api.get(f"/api/v1/teams/{team['id']}").get_json()["member_ids"] == []
