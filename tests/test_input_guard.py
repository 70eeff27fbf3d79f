"""NUL characters anywhere in API input answer 422 and write nothing; page forms refuse them too."""

import secrets

from tenants import active_tenant


def test_nul_in_query_or_body_is_422(tenant):
    listed = tenant.api.get("/api/v1/tickets?tag=%00")
    assert listed.status_code == 422 and "tag" in listed.get_json()["errors"]
    assert tenant.api.get("/api/v1/tickets/export?format=csv&q=a%00b").status_code == 422
    created = tenant.api.post("/api/v1/tickets", json={"title": "nul\u0000title", "tags": ["ok", "b\u0000d"]})
    assert created.status_code == 422
    assert set(created.get_json()["errors"]) == {"title", "tags.1"}
    assert tenant.api.post("/api/v1/users", json={"email": "a@example.com", "name": "x\u0000",
                                                  "role": "agent"}).status_code == 422
    assert tenant.api.get("/api/v1/tickets").get_json()["items"] == []
    assert len(tenant.api.get("/api/v1/users").get_json()["items"]) == 1


def test_page_forms_refuse_control_characters_like_the_api(app, make_tenant):
    client = app.test_client()
    for name in ("Org\x1b[2J", "Org\x00", "Org\x7f", "Org\x85"):
        slug = f"pg{secrets.token_hex(5)}"
        resp = client.post("/signup", data={"name": name, "slug": slug, "admin_email": "a@b.example",
                                            "admin_password": "a long password"},
                           environ_base={"REMOTE_ADDR": "10.9.8.7"})
        assert resp.status_code == 422, (name, resp.status_code)
        with app.app_context():
            assert active_tenant(slug) is None, name
    tenant = make_tenant()
    resp = client.post(f"/t/{tenant.slug}/login", data={"email": tenant.admin_email, "password": "pass\x00word"},
                       environ_base={"REMOTE_ADDR": "10.9.8.6"})
    assert resp.status_code == 422


def test_page_forms_that_are_not_utf8_are_400_like_the_api(services, make_tenant):
    """Werkzeug kept `%FF` as those three characters and made raw bytes U+FFFD: a team was named so.
    With CSRF on, as in production: its check reads the form before the guard does."""
    import re

    from app import create_app
    from tests.helpers import app_config

    tenant = make_tenant()
    client = create_app(app_config(services, WTF_CSRF_ENABLED=True)).test_client()
    login = client.get(f"/t/{tenant.slug}/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login).group(1)
    assert client.post(f"/t/{tenant.slug}/login", data={"email": tenant.admin_email, "password": tenant.admin_password,
                                                         "csrf_token": token}).status_code == 302
    page = client.get(f"/t/{tenant.slug}/admin/teams").get_data(as_text=True)  # the session's token now
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    form = "csrf_token=" + token + "&"
    for path in ("/admin/teams", "/tickets/new"):  # a form the guard checks, and one a page view reads itself
        for body in ("name=Bad%FF%FEteam", "title=Bad%FF%FE", "name%FF=x"):
            resp = client.post(f"/t/{tenant.slug}{path}", data=(form + body).encode(),
                               content_type="application/x-www-form-urlencoded")
            assert resp.status_code == 400 and b"The form is not UTF-8 text." in resp.data, (path, body)
        raw = client.post(f"/t/{tenant.slug}{path}", data=form.encode() + b"name=Raw\xff\xfe",
                          content_type="application/x-www-form-urlencoded")
        assert raw.status_code == 400, path
    multipart = (f'--X\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'.encode()
                 + b'--X\r\nContent-Disposition: form-data; name="name"\r\n\r\nRaw\xff\xfe\r\n--X--\r\n')
    resp = client.post(f"/t/{tenant.slug}/admin/teams", data=multipart, content_type="multipart/form-data; boundary=X")
    assert resp.status_code == 400 and b"The form is not UTF-8 text." in resp.data
    assert client.post(f"/t/{tenant.slug}/admin/teams", data=form + "name=T%C3%A9am",
                       content_type="application/x-www-form-urlencoded").status_code == 302  # UTF-8 escapes are fine
    assert [t["name"] for t in tenant.api.get("/api/v1/teams").get_json()["items"]] == ["Téam"]
    assert tenant.api.get("/api/v1/tickets").get_json()["items"] == []


def test_a_body_of_white_space_alone_is_not_json(tenant):
    """A vertical tab or a form feed alone read as no body (bytes.strip drops them), and so did JSON's own
    white space, which holds no JSON value either (the fuzzer sent a PATCH of " "): each answered 200."""
    hook = tenant.api.post("/api/v1/webhooks", json={"url": "https://example.com/hooks", "events": ["ticket.closed"]})
    path = f"/api/v1/webhooks/{hook.get_json()['id']}"
    for raw in (b"\x0b", b"\x0c", b" \x0b\n", b"\x1c", b" ", b"\n", b" \t\r\n"):
        resp = tenant.api.client.patch(path, data=raw, headers={"Authorization": f"Bearer {tenant.key}",
                                                                "Content-Type": "application/json"})
        assert resp.status_code == 400 and resp.get_json()["message"] == "The body is not valid JSON.", raw
    resp = tenant.api.client.patch(path, data=b"", headers={"Authorization": f"Bearer {tenant.key}",
                                                            "Content-Type": "application/json"})
    assert resp.status_code == 200  # no body: nothing to change, as the document's optional body says


def test_a_key_given_twice_in_one_object_is_refused_and_changes_nothing(tenant):
    """The last one won ({"name": "first", "name": "second"} made a team "second"), where a proxy or
    filter in front of the app may have read the first."""
    headers = {"Authorization": f"Bearer {tenant.key}", "Content-Type": "application/json"}
    for path, raw, key in (
            ("/api/v1/teams", b'{"name": "first", "name": "second"}', "name"),
            ("/api/v1/tickets", b'{"title": "t", "tags": ["a"], "priority": "low", "priority": "high"}', "priority"),
            ("/api/v1/tickets", b'{"title": "t", "x": {"k": 1, "k": 2}}', "k"),
            ("/api/v1/teams", b'{"name": "n", "\\u006eame": "m"}', "name")):  # the same key, spelt with an escape
        resp = tenant.api.client.post(path, data=raw, headers=headers)
        assert resp.status_code == 400, (raw, resp.get_json())
        assert resp.get_json()["message"] == f"The body gives the key {key!r} twice in one object."
    assert tenant.api.get("/api/v1/teams").get_json()["items"] == []
    assert tenant.api.get("/api/v1/tickets").get_json()["items"] == []
    assert tenant.api.post("/api/v1/teams", json={"name": "once"}).status_code == 201


def _strict_session(services, tenant):
    """A client with CSRF on, as in production, signed in as the tenant's admin; return it and its token."""
    import re

    from app import create_app
    from tests.helpers import app_config

    client = create_app(app_config(services, WTF_CSRF_ENABLED=True)).test_client()
    login = client.get(f"/t/{tenant.slug}/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login).group(1)
    assert client.post(f"/t/{tenant.slug}/login", data={"email": tenant.admin_email, "password": tenant.admin_password,
                                                         "csrf_token": token}).status_code == 302
    page = client.get(f"/t/{tenant.slug}/me/password").get_data(as_text=True)
    return client, re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)


def test_a_json_body_to_a_page_form_is_415_not_a_500(services, make_tenant):
    """Flask-WTF reads a JSON body as the form's fields: a list or a number there, a number in a field, or
    a lone surrogate in the sign-in's email answered 500. No page sends JSON; a CSRF token is free to get."""
    tenant = make_tenant()
    client, token = _strict_session(services, tenant)
    bodies = [["a"], 5, "x", True, {"name": 5, "slug": "abcde", "admin_email": "a@b.co",
                                          "admin_password": "password123"}]
    paths = (f"/t/{tenant.slug}/me/password", f"/t/{tenant.slug}/login", "/signup", f"/t/{tenant.slug}/admin/teams")
    for path in paths:
        for body in bodies:
            resp = client.post(path, json=body, headers={"X-CSRFToken": token})
            assert resp.status_code == 415, (path, body, resp.status_code)
    resp = client.post(f"/t/{tenant.slug}/login", data='{"email": "\\ud800@x", "password": "x"}',
                       headers={"Content-Type": "application/json", "X-CSRFToken": token})
    assert resp.status_code == 415
    assert [t["name"] for t in tenant.api.get("/api/v1/teams").get_json()["items"]] == []


def test_a_multipart_part_with_no_name_is_400_not_a_500(services, make_tenant):
    """Werkzeug files a nameless part under None, which the guard's check of the form's text met as a name."""
    tenant = make_tenant()
    client, token = _strict_session(services, tenant)
    for path in ("/admin/teams", "/me/availability", "/logout"):
        body = (f'--xx\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
                '--xx\r\nContent-Disposition: form-data; name="name"\r\n\r\nTeam\r\n'
                '--xx\r\nContent-Disposition: form-data\r\n\r\nhi\r\n--xx--\r\n').encode()
        resp = client.post(f"/t/{tenant.slug}{path}", data=body, content_type="multipart/form-data; boundary=xx")
        assert resp.status_code == 400 and b"Every field of a form needs a name." in resp.data, (path, resp.status_code)
    assert tenant.api.get("/api/v1/teams").get_json()["items"] == []
    assert client.get(f"/t/{tenant.slug}/admin/teams").status_code == 200  # still signed in
