"""Password and session changes that overlap: each is held at its worst point while the other commits.

- A password change through `/me/password` checks the current password against the hash it
  replaces, under the row's lock: an admin's reset landing in between was overwritten, and
  whoever held the old password (an intruder) stayed signed in.
- A sign-in that brings an old hash up to date writes it only over the hash it checked: it put
  back the old password over a change made meanwhile.
- A sign-in whose password was checked just before an admin's reset keeps the session version read
  with that password: it took the reset's version, and the old password held a live session.
- Session versions go up in SQL, so two sign-outs at once both count.
- A demoted admin's request already on its way removes no other admin.
"""

from __future__ import annotations

import threading

from app import create_app
from app.extensions import db
from app.people import services as people
from app.people import ui as people_ui
from app.people.models import User
from tests.helpers import app_config


def _sign_in(app, slug: str, email: str, password: str):
    client = app.test_client()
    assert client.post(f"/t/{slug}/login", data={"email": email, "password": password}).status_code == 302
    return client


def _signed_in(client, slug: str) -> bool:
    return client.get(f"/t/{slug}/").status_code == 200


def _signs_in(app, slug: str, email: str, password: str) -> bool:
    return app.test_client().post(f"/t/{slug}/login", data={"email": email, "password": password}).status_code == 302


def test_an_admins_reset_during_a_password_change_stands_and_signs_the_changer_out(app, tenant, monkeypatch):
    victim = tenant.user("agent", password="stolen password")
    intruder = _sign_in(app, tenant.slug, victim["email"], "stolen password")
    checked, go = threading.Event(), threading.Event()
    original = people_ui.check_password

    def slow_check(hashed, password):
        result = original(hashed, password)
        checked.set()
        go.wait(10)
        return result

    monkeypatch.setattr(people_ui, "check_password", slow_check)
    answers = []
    change = threading.Thread(target=lambda: answers.append(intruder.post(
        f"/t/{tenant.slug}/me/password", data={"current_password": "stolen password",
                                                "password": "the intruder's own"}).status_code))
    change.start()
    assert checked.wait(10)
    reset = threading.Thread(target=lambda: answers.append(tenant.api.patch(
        f"/api/v1/users/{victim['id']}", json={"password": "admin reset pw 1"}).status_code))
    reset.start()
    reset.join(1)  # it waits for the change's lock, or the change meets it
    go.set()
    change.join(10)
    reset.join(10)
    assert 200 in answers, answers
    assert not _signed_in(intruder, tenant.slug)
    assert _signs_in(app, tenant.slug, victim["email"], "admin reset pw 1")
    assert not _signs_in(app, tenant.slug, victim["email"], "the intruder's own")


def test_a_password_change_from_an_ended_session_is_refused(app, tenant):
    person = tenant.user("agent", password="first password")
    browser = _sign_in(app, tenant.slug, person["email"], "first password")
    assert tenant.api.patch(f"/api/v1/users/{person['id']}", json={"password": "admin reset pw 2"}).status_code == 200
    changed = browser.post(f"/t/{tenant.slug}/me/password", data={"current_password": "admin reset pw 2",
                                                                  "password": "mine again now"})
    assert changed.status_code == 302 and "/login" in changed.headers["Location"]
    assert _signs_in(app, tenant.slug, person["email"], "admin reset pw 2")


def test_a_sign_in_that_rehashes_does_not_put_back_a_password_changed_meanwhile(services, tenant, in_tenant,
                                                                               monkeypatch):
    slow = create_app(app_config(services, PASSWORD_HASH_FAST=False))
    person = tenant.user("agent", password="old password 1")  # hashed with the fast test parameters
    with in_tenant(tenant):
        stored = db.session.get(User, person["id"]).password_hash
    with slow.app_context():
        assert people.needs_rehash(stored)  # so the sign-in below brings it up to date
    checked, go = threading.Event(), threading.Event()
    original = people.needs_rehash

    def held(password_hash):  # the password is checked, and its hash not yet replaced
        checked.set()
        go.wait(10)
        return original(password_hash)

    monkeypatch.setattr(people, "needs_rehash", held)
    answers = []
    sign_in = threading.Thread(target=lambda: answers.append(slow.test_client().post(
        f"/t/{tenant.slug}/login", data={"email": person["email"], "password": "old password 1"}).status_code))
    sign_in.start()
    assert checked.wait(20)
    assert tenant.api.patch(f"/api/v1/users/{person['id']}", json={"password": "new password 2"}).status_code == 200
    go.set()
    sign_in.join(20)
    monkeypatch.setattr(people, "needs_rehash", original)
    assert _signs_in(slow, tenant.slug, person["email"], "new password 2")
    assert not _signs_in(slow, tenant.slug, person["email"], "old password 1")


def test_a_sign_in_straddling_an_admins_reset_is_signed_out_by_it(app, tenant, monkeypatch):
    victim = tenant.user("agent", password="stolen password")
    checked, go = threading.Event(), threading.Event()
    original = people.check_password

    def slow_check(hashed, password):
        result = original(hashed, password)
        checked.set()
        go.wait(10)
        return result

    monkeypatch.setattr(people, "check_password", slow_check)
    intruder, answers = app.test_client(), []
    sign_in = threading.Thread(target=lambda: answers.append(intruder.post(
        f"/t/{tenant.slug}/login", data={"email": victim["email"], "password": "stolen password"}).status_code))
    sign_in.start()
    assert checked.wait(10)
    assert tenant.api.patch(f"/api/v1/users/{victim['id']}", json={"password": "admin reset pw 9"}).status_code == 200
    go.set()
    sign_in.join(10)
    monkeypatch.setattr(people, "check_password", original)
    assert answers == [302]  # the password was right when it was checked
    assert not _signed_in(intruder, tenant.slug)
    assert _signs_in(app, tenant.slug, victim["email"], "admin reset pw 9")


def test_two_sign_outs_at_once_both_count(app, tenant, in_tenant):
    person = tenant.user("agent", password="a password")
    with in_tenant(tenant):
        before = db.session.get(User, person["id"]).session_version
        user = db.session.get(User, person["id"])
        people.sign_out_everywhere(user)
        db.session.execute(User.__table__.update().where(User.id == person["id"])
                           .values(session_version=User.session_version + 1))  # another at the same moment
        db.session.commit()
        assert db.session.get(User, person["id"]).session_version == before + 2


def test_a_demoted_admins_request_on_its_way_removes_no_admin(app, tenant, monkeypatch):
    b, c = tenant.user("admin"), tenant.user("admin")
    b_key = tenant.key_for(b).key
    reached, go = threading.Event(), threading.Event()
    original = people._ensure_another_admin

    def held(user):
        if threading.current_thread().name == "b":
            reached.set()
            go.wait(10)
        return original(user)

    monkeypatch.setattr(people, "_ensure_another_admin", held)
    answers = []
    demote_c = threading.Thread(name="b", target=lambda: answers.append(app.test_client().patch(
        f"/api/v1/users/{c['id']}", json={"role": "agent"}, headers={"Authorization": f"Bearer {b_key}"})))
    demote_c.start()
    assert reached.wait(10)
    assert tenant.api.patch(f"/api/v1/users/{b['id']}", json={"role": "agent"}).status_code == 200
    go.set()
    demote_c.join(10)
    assert answers[0].status_code in (401, 403), answers[0].get_json()
    assert tenant.api.get(f"/api/v1/users/{c['id']}").get_json()["role"] == "admin"
