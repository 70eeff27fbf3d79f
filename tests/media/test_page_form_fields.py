"""A page form's text fields pass the input guard wherever they come in a multipart body.

`StreamedForm.read` checks the fields read before the first file (with the CSRF token, before any
file is stored); fields after a file part were added to the form unchecked, so a control
character the API refuses with 422 was stored through the page form. The whole form is now
checked again once read, and the files already stored are discarded when it is refused.
"""

from __future__ import annotations

from tests.media import samples
from tests.ui.conftest import make_help_desk, sign_in  # noqa: F401  (fixture)

ESCAPE = "look \x1b[2J\x1b[31m here"  # a terminal escape: the guard's CONTROL_MESSAGE case
BOUNDARY = "review3boundary"


def multipart(parts: list[tuple[str, bytes, str | None]]) -> tuple[bytes, str]:
    """Build a multipart body with its parts in exactly this order (a browser keeps input order)."""
    out = b""
    for name, value, filename in parts:
        out += f"--{BOUNDARY}\r\n".encode()
        if filename:
            out += (f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    "Content-Type: image/png\r\n\r\n").encode()
        else:
            out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return out, f"multipart/form-data; boundary={BOUNDARY}"


def bodies(tenant, ticket) -> list[str]:
    items = tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]
    return [m["body"] for m in items]


def test_a_reply_field_after_the_file_is_guarded_like_one_before_it(tenant, media, sign_in):  # noqa: F811
    desk = make_help_desk(tenant)
    ticket = desk.ticket_for(desk.requester)
    client = sign_in(desk.requester)
    url = f"/t/{desk.slug}/tickets/{ticket['number']}/messages"

    # the API refuses the text ...
    api = tenant.api.post(f"/api/v1/tickets/{ticket['id']}/messages", json={"body": ESCAPE})
    assert api.status_code == 422
    # ... and so does the page form when the field comes first
    data, ctype = multipart([("body", ESCAPE.encode(), None), ("file", samples.png(), "a.png")])
    assert client.post(url, data=data, content_type=ctype).status_code == 422
    assert ESCAPE not in bodies(tenant, ticket)

    # the same fields, the file first: must be refused the same way, and store nothing
    data, ctype = multipart([("file", samples.png(), "a.png"), ("body", ESCAPE.encode(), None)])
    after = client.post(url, data=data, content_type=ctype)
    assert after.status_code == 422, f"stored with {after.status_code}: {bodies(tenant, ticket)!r}"
    assert ESCAPE not in bodies(tenant, ticket)


def test_a_new_tickets_title_after_the_file_is_guarded_too(tenant, media, sign_in):  # noqa: F811
    desk = make_help_desk(tenant)
    client = sign_in(desk.requester)
    data, ctype = multipart([("file", samples.png(), "a.png"), ("title", ESCAPE.encode(), None),
                             ("description", b"hello", None), ("priority", b"normal", None)])
    response = client.post(f"/t/{desk.slug}/tickets/new", data=data, content_type=ctype)
    titles = [t["title"] for t in tenant.api.get("/api/v1/tickets").get_json()["items"]]
    assert response.status_code == 422, f"answered {response.status_code}; titles now {titles!r}"
    assert ESCAPE not in titles


def test_a_form_part_without_a_name_is_a_bad_request(tenant, media, sign_in):  # noqa: F811
    """Such a part was kept as a field named None, on which the input guard failed: a 500."""
    desk = make_help_desk(tenant)
    ticket = desk.ticket_for(desk.requester)
    client = sign_in(desk.requester)
    nameless = (f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n").encode()
    nameless_file = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; filename="a.png"\r\n'
                     "Content-Type: image/png\r\n\r\n").encode() + samples.png() + b"\r\n"
    for url in (f"/t/{desk.slug}/tickets/{ticket['number']}/messages", f"/t/{desk.slug}/tickets/new"):
        for part in (nameless, nameless_file):
            before, ctype = multipart([("body", b"hello", None), ("title", b"Printer", None)])
            data = part + before
            resp = client.post(url, data=data, content_type=ctype)
            assert resp.status_code == 400, (url, resp.status_code)
            assert "A part of the form has no name." in resp.get_data(as_text=True)
    assert "hello" not in bodies(tenant, ticket)
    assert [t["title"] for t in tenant.api.get("/api/v1/tickets").get_json()["items"]] == [ticket["title"]]
