"""After-commit work runs once the whole transaction commits: not at a savepoint, never after a rollback."""

from __future__ import annotations

import pytest

from app import unit_of_work
from app.extensions import db


@pytest.fixture
def seen(monkeypatch) -> list:
    calls: list = []
    monkeypatch.setitem(unit_of_work._handlers, "test", calls.append)
    return calls


def test_work_waits_for_the_outer_commit_not_a_released_savepoint(app, tenant, in_tenant, seen):
    with in_tenant(tenant) as session:
        unit_of_work.after_commit("test", "first")
        with session.begin_nested():
            unit_of_work.after_commit("test", "inside")
        assert seen == []  # a released SAVEPOINT is not a commit
        session.commit()
        assert seen == [["first", "inside"]]
        session.commit()
        assert seen == [["first", "inside"]]  # each unit of work runs its items once


def test_a_rollback_drops_the_work_and_a_rolled_back_savepoint_keeps_the_rest(app, tenant, in_tenant, seen):
    with in_tenant(tenant) as session:
        unit_of_work.after_commit("test", "dropped")
        session.rollback()
        session.commit()
        assert seen == []
        unit_of_work.after_commit("test", "kept")
        with pytest.raises(RuntimeError), session.begin_nested():
            raise RuntimeError("the savepoint rolls back")
        session.commit()
        assert seen == [["kept"]]


def test_an_unknown_kind_is_refused(app):
    with app.app_context():
        with pytest.raises(LookupError):
            unit_of_work.after_commit("nobody-handles-this", 1)
        assert db.session.info.get(unit_of_work.PENDING) is None
