"""A person changes their own password on a page: the one they have first; everywhere else is signed out."""

from __future__ import annotations

PASSWORD, NEW = "correct horse battery", "a brand new password"


def _signed_in(app, tenant, email: str, password: str = PASSWORD):
    client = app.test_client()
    assert client.post(f"/t/{tenant.slug}/login", data={"email": email, "password": password}).status_code == 302
    return client


def test_a_person_given_a_password_makes_it_their_own(app, tenant):
    agent = tenant.api.post("/api/v1/users", json={"email": "ada@example.com", "name": "Ada", "role": "agent",
                                                   "password": PASSWORD}).get_json()
    here, elsewhere = _signed_in(app, tenant, agent["email"]), _signed_in(app, tenant, agent["email"])
    url = f"/t/{tenant.slug}/me/password"
    shown = here.get(url).get_data(as_text=True)
    assert 'name="current_password"' in shown and 'autocomplete="new-password"' in shown
    assert url in here.get(f"/t/{tenant.slug}/").get_data(as_text=True)  # their name, on every page, leads here

    wrong = here.post(url, data={"current_password": "not it", "password": NEW})
    assert wrong.status_code == 422 and "This is not your password." in wrong.get_data(as_text=True)
    short = here.post(url, data={"current_password": PASSWORD, "password": "short"})
    assert short.status_code == 422 and 'id="password-error"' in short.get_data(as_text=True)
    assert here.post(url, data={"current_password": PASSWORD}).status_code == 422
    assert elsewhere.get(f"/t/{tenant.slug}/").status_code == 200  # nothing changed yet

    changed = here.post(url, data={"current_password": PASSWORD, "password": NEW})
    assert changed.status_code == 302
    assert here.get(f"/t/{tenant.slug}/").status_code == 200  # still signed in here
    assert elsewhere.get(f"/t/{tenant.slug}/").status_code == 302  # and nowhere else
    _signed_in(app, tenant, agent["email"], NEW)
    old = app.test_client().post(f"/t/{tenant.slug}/login", data={"email": agent["email"], "password": PASSWORD})
    assert old.status_code == 401


def test_guesses_at_the_current_password_are_held_back_as_sign_ins_are(app, tenant, in_tenant):
    from app.people.models import User
    from app.people.passwords import check_password

    client = _signed_in(app, tenant, tenant.admin_email, tenant.admin_password)
    url = f"/t/{tenant.slug}/me/password"
    statuses = [client.post(url, data={"current_password": f"guess {n}", "password": NEW}).status_code
                for n in range(30)]
    assert statuses[0] == 422 and statuses[-1] == 429
    held = client.post(url, data={"current_password": tenant.admin_password, "password": NEW})
    assert held.status_code == 429 and int(held.headers["Retry-After"]) > 0
    with in_tenant(tenant) as session:  # the password did not change
        assert check_password(session.get(User, tenant.admin_id).password_hash, tenant.admin_password)


def test_the_password_page_is_for_people_signed_in(app, tenant):
    assert app.test_client().get(f"/t/{tenant.slug}/me/password").status_code == 302


def test_a_mistyped_new_password_is_no_wrong_guess(app, tenant):
    """The attempt was counted before the new password was read: a person retyping a too short one, with
    their right current password, was held back from the page and then from signing in at all."""
    client = _signed_in(app, tenant, tenant.admin_email, tenant.admin_password)
    url = f"/t/{tenant.slug}/me/password"
    for _ in range(15):
        assert client.post(url, data={"current_password": tenant.admin_password, "password": "short"}
                           ).status_code == 422
    assert client.post(url, data={"current_password": tenant.admin_password, "password": NEW}).status_code == 302
    assert app.test_client().post(f"/t/{tenant.slug}/login", data={"email": tenant.admin_email, "password": NEW}
                                  ).status_code == 302


def test_the_password_page_needs_a_csrf_token_and_its_own_tenants_session(services, tenant, make_tenant):
    import re

    from app import create_app
    from tests.helpers import app_config

    strict = create_app(app_config(services, WTF_CSRF_ENABLED=True))
    client = strict.test_client()
    form = client.get(f"/t/{tenant.slug}/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
    assert client.post(f"/t/{tenant.slug}/login", data={"email": tenant.admin_email, "csrf_token": token,
                                                        "password": tenant.admin_password}).status_code == 302
    no_token = client.post(f"/t/{tenant.slug}/me/password",
                           data={"current_password": tenant.admin_password, "password": NEW})
    assert no_token.status_code == 400
    other = make_tenant()  # this session is no session there
    elsewhere = client.get(f"/t/{other.slug}/me/password")
    assert elsewhere.status_code == 302 and "/login" in elsewhere.headers["Location"]


def test_hostile_bytes_on_the_password_page_are_refused_in_words(app, tenant):
    client = _signed_in(app, tenant, tenant.admin_email, tenant.admin_password)
    url = f"/t/{tenant.slug}/me/password"
    for current, new in (("a\u0000b", NEW), (tenant.admin_password, "new\u0000password"), ("x" * 500_000, NEW),
                         (tenant.admin_password, "x" * 300)):
        assert 400 <= client.post(url, data={"current_password": current, "password": new}).status_code < 500
    assert 400 <= client.post(url, json={"current_password": tenant.admin_password, "password": NEW}).status_code < 500
