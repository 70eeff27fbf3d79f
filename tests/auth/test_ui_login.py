"""UI sign-in and sign-out, cookies and CSRF."""

import re
import secrets

from app import create_app
from tests.helpers import app_config


def login(client, tenant, password=None):
    return client.post(f"/t/{tenant.slug}/login",
                       data={"email": tenant.admin_email, "password": password or tenant.admin_password})


def test_login_home_logout_and_cookie_replay_is_refused(app, tenant):
    client = app.test_client()
    assert client.get(f"/t/{tenant.slug}/").status_code == 302  # to the login page
    resp = login(client, tenant)
    assert resp.status_code == 302
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    home = client.get(f"/t/{tenant.slug}/")
    assert home.status_code == 200 and b"<h1>Queues</h1>" in home.data
    stolen = client.get_cookie("session").value
    assert client.post(f"/t/{tenant.slug}/logout").status_code == 302
    assert client.get(f"/t/{tenant.slug}/").status_code == 302
    replay = app.test_client()
    replay.set_cookie("session", stolen)
    assert replay.get(f"/t/{tenant.slug}/").status_code == 302, "a cookie from before logout must be refused"


def test_wrong_password_is_refused(app, tenant):
    client = app.test_client()
    resp = login(client, tenant, password="wrong password")
    assert resp.status_code == 401
    assert b"Wrong email or password" in resp.data
    assert client.get(f"/t/{tenant.slug}/").status_code == 302


def test_a_sign_in_form_with_a_field_missing_or_too_long_answers_422_beside_the_field(app, tenant):
    client = app.test_client()
    for data in ({"email": "", "password": "x"}, {"email": tenant.admin_email}, {"password": "pw"},
                 {"email": "a" * 250 + "@b.example", "password": "pw"},
                 {"email": tenant.admin_email, "password": "p" * 300}):
        resp = client.post(f"/t/{tenant.slug}/login", data=data)
        assert resp.status_code == 422, (data, resp.status_code)
        assert b"<form" in resp.data
    assert client.get(f"/t/{tenant.slug}/").status_code == 302


def test_a_session_does_not_open_another_tenant(app, make_tenant):
    a, b = make_tenant(), make_tenant()
    client = app.test_client()
    assert login(client, a).status_code == 302
    assert client.get(f"/t/{a.slug}/").status_code == 200
    assert client.get(f"/t/{b.slug}/").status_code == 302


def test_login_form_has_labelled_inputs(app, tenant):
    page = app.test_client().get(f"/t/{tenant.slug}/login").data.decode()
    assert '<label for="email">email</label>' in page
    assert '<label for="password">password</label>' in page


def test_forms_need_a_csrf_token(services, tenant):
    strict = create_app(app_config(services, WTF_CSRF_ENABLED=True))
    client = strict.test_client()
    refused = login(client, tenant)
    assert refused.status_code == 400
    page = client.get(f"/t/{tenant.slug}/login").data.decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    accepted = client.post(f"/t/{tenant.slug}/login", data={
        "email": tenant.admin_email, "password": tenant.admin_password, "csrf_token": token})
    assert accepted.status_code == 302
    # The API authenticates by key and needs no token.
    assert client.get("/api/v1/users", headers={"Authorization": f"Bearer {tenant.key}"}).status_code == 200


def test_secure_cookie_behind_https(services, tenant):
    secure = create_app(app_config(services, SESSION_COOKIE_SECURE=True))
    resp = login(secure.test_client(), tenant)
    assert "Secure" in resp.headers["Set-Cookie"]


def test_signup_page_creates_an_organization(app):
    slug = f"page-{secrets.token_hex(4)}"
    client = app.test_client()
    assert b'<label for="slug">slug</label>' in client.get("/signup").data
    resp = client.post("/signup", data={"name": "Page Org", "slug": slug, "admin_email": "p@page.example",
                                        "admin_password": "long enough pw"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/t/{slug}/login")
    again = client.post("/signup", data={"name": "Page Org", "slug": slug, "admin_email": "p@page.example",
                                         "admin_password": "long enough pw"})
    assert again.status_code == 409
    bad = client.post("/signup", data={"name": "X", "slug": "www", "admin_email": "p@x.example",
                                       "admin_password": "long enough pw"})
    assert bad.status_code == 422


def test_a_person_signs_in_with_the_email_as_it_was_written_whatever_its_letters(app, tenant):
    """The lookup folds case as the unique index does (in SQL): Python's lower() of "İ" is two characters.
    (The Kelvin sign, a compatibility form of K, is refused as a lookalike: `tests/people/test_users.py`.)"""
    for email in ("İVY@coll.example", "ÅSA@Coll.Example", "ΣΟΦΙΑ@coll.example"):
        made = tenant.api.post("/api/v1/users", json={"email": email, "name": "X", "role": "agent",
                                                      "password": "correct horse battery"})
        assert made.status_code == 201, made.get_json()
        client = app.test_client()
        resp = client.post(f"/t/{tenant.slug}/login", data={"email": email, "password": "correct horse battery"})
        assert resp.status_code == 302, (email, resp.status_code)
        taken = tenant.api.post("/api/v1/users", json={"email": email, "name": "Y", "role": "agent",
                                                       "password": "correct horse battery"})
        assert taken.status_code == 409, (email, taken.get_json())


def test_a_sign_in_sent_as_json_is_refused_in_words(services, tenant):
    """Flask-WTF reads a JSON body too: a number or a list as the email broke the length check (500), and a
    list as the body, a number in a field or a lone surrogate did too. No page sends JSON, so none is taken."""
    strict = create_app(app_config(services, WTF_CSRF_ENABLED=True))
    client = strict.test_client()
    url = f"/t/{tenant.slug}/login"
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', client.get(url).get_data(as_text=True))
    for email in (12345, ["x@example.com"], {"a": 1}, True, None, tenant.admin_email):
        answer = client.post(url, json={"email": email, "password": tenant.admin_password},
                             headers={"X-CSRFToken": token.group(1)})
        assert answer.status_code == 415 and b"not JSON" in answer.data, email
    signed_in = client.post(url, data={"email": tenant.admin_email, "password": tenant.admin_password},
                            headers={"X-CSRFToken": token.group(1)})
    assert signed_in.status_code == 302
