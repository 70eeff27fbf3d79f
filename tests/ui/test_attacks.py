"""The pages attacked as a stranger would: each finding of that pass, kept as a test.

Script in every field a page shows (names of people and organizations included), a reflected
search, thread links and parents pointing at internal notes, tokens carried to another ticket,
oversized forms, cursors from another tenant, and routes called with the wrong method.
"""

from __future__ import annotations

import re
import secrets

import pytest
import websocket

from app import create_app
from tests.helpers import app_config, post_message
from tests.ui.conftest import Person, make_help_desk

SCRIPT = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"


def no_live_markup(html: str) -> None:
    """Fail if `html` carries the payload as markup rather than text."""
    assert "<script>alert(1)" not in html
    assert "<img src=x" not in html
    assert html.count("</script>") == html.count("<script")  # nothing closed a script block early


def test_script_in_an_organizations_name_stays_text(app):
    slug = f"x{secrets.token_hex(5)}"
    client = app.test_client()
    assert client.post("/signup", data={"name": f"Org {SCRIPT}", "slug": slug, "admin_email": f"a@{slug}.example",
                                        "admin_password": "correct horse battery"}).status_code == 302
    assert client.post(f"/t/{slug}/login", data={"email": f"a@{slug}.example",
                                                 "password": "correct horse battery"}).status_code == 302
    for path in ("/", "/tickets/new", "/login"):
        html = client.get(f"/t/{slug}{path}").data.decode()
        assert "Org &lt;/script&gt;" in html, path
        no_live_markup(html)


def test_script_in_every_name_and_field_a_page_shows_stays_text(tenant, sign_in):
    hd = make_help_desk(tenant)
    evil_agent = Person(tenant, tenant.user("agent", name=f"Agent {SCRIPT}"))
    evil_requester = Person(tenant, tenant.user("requester", name=f"Req {SCRIPT}"))
    team = hd.desk.team(f"Team {SCRIPT}", [evil_agent.user])
    ticket = hd.ticket_for(evil_requester, title=f"T {SCRIPT}"[:200], description=SCRIPT, category=SCRIPT[:100])
    key_of_agent = tenant.key_for(evil_agent.user)
    assert key_of_agent.patch(f"/api/v1/tickets/{ticket['id']}", json={
        "assignee_id": evil_agent.id, "team_id": team["id"]}).status_code == 200
    first = post_message(key_of_agent, ticket["id"], body=SCRIPT).get_json()
    post_message(key_of_agent, ticket["id"], body=SCRIPT, parent_id=first["id"])
    post_message(key_of_agent, ticket["id"], body=SCRIPT, internal=True)
    assert tenant.api.post(f"/api/v1/tickets/{ticket['id']}/close", json={"resolution": SCRIPT}).status_code == 200

    for person in (evil_agent, evil_requester, hd.admin):
        viewer = sign_in(person)
        for path in ("/", "/?queue=open", f"/tickets/{ticket['number']}", f"/tickets/{ticket['number']}?reply_to="
                     f"{first['id']}", "/tickets/new"):
            response = viewer.get(f"/t/{tenant.slug}{path}")
            if response.status_code == 403:
                continue  # a requester asking for a queue
            assert response.status_code == 200, path
            no_live_markup(response.data.decode())
        names = viewer.get(f"/t/{tenant.slug}/tickets/{ticket['number']}/participants").get_json()
        assert any(SCRIPT in p["name"] for p in names.values())  # JSON carries text; the page script sets textContent
    refused = sign_in(evil_requester).post(f"/t/{tenant.slug}/tickets/new",
                                           data={"title": SCRIPT * 10, "category": SCRIPT})
    assert refused.status_code == 422
    no_live_markup(refused.data.decode())


def test_a_reflected_search_stays_text(help_desk, sign_in):
    page = sign_in(help_desk.agent).get(f"/t/{help_desk.slug}/?queue=open&q=%22%3E%3Cscript%3Ealert(1)%3C/script%3E")
    assert page.status_code == 200
    html = page.data.decode()
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in html
    no_live_markup(html)


def test_internal_notes_cannot_be_reached_through_thread_links_or_parents(help_desk, sign_in):
    hd = help_desk
    ticket = hd.ticket_for(hd.requester)
    note = post_message(hd.tenant.key_for(hd.agent.user), ticket["id"], body="note: VIP", internal=True).get_json()
    requester = sign_in(hd.requester)
    page = requester.get(f"/t/{hd.slug}/tickets/{ticket['number']}?reply_to={note['id']}").data.decode()
    assert "Replying in thread" not in page and "VIP" not in page and note["id"] not in page
    posted = requester.post(f"/t/{hd.slug}/tickets/{ticket['number']}/messages",
                            data={"body": "what note?", "parent_id": note["id"]})
    assert posted.status_code == 422 and "VIP" not in posted.data.decode()
    assert hd.tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"] == [note]


def test_a_token_for_one_ticket_opens_no_other(live_server, help_desk, sign_in):
    hd = help_desk
    mine, theirs = hd.ticket_for(hd.requester, title="mine"), hd.ticket_for(hd.other_requester, title="theirs")
    url = sign_in(hd.requester).post(f"/t/{hd.slug}/tickets/{mine['number']}/stream-token").get_json()["url"]
    moved = url.replace(mine["id"], theirs["id"])
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"ws://127.0.0.1:{live_server.port}{moved}", timeout=5)
    assert refused.value.status_code == 401


def test_oversized_input_is_refused_in_words(help_desk, sign_in):
    client = sign_in(help_desk.requester)
    ticket = help_desk.ticket_for(help_desk.requester)
    long_body = client.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/messages", data={"body": "x" * 70000})
    assert long_body.status_code == 422
    assert '<p class="field-error" id="body-error">Length must be between 1 and 65536.</p>' in long_body.data.decode()
    huge = client.post(f"/t/{help_desk.slug}/tickets/new", data={"title": "t", "description": "x" * (2 << 20)})
    assert huge.status_code == 413 and b"Request Entity Too Large" in huge.data


def test_a_cursor_from_another_tenant_is_refused(make_tenant, sign_in):
    a, b = make_help_desk(make_tenant()), make_help_desk(make_tenant())
    for hd in (a, b):
        for i in range(21):
            hd.ticket_for(hd.requester, title=f"t{i}")
    page = sign_in(a.requester).get(f"/t/{a.slug}/").data.decode()
    cursor = re.search(r'cursor=([^"&]+)"[^>]*rel="next"', page).group(1)
    other = sign_in(b.requester).get(f"/t/{b.slug}/?cursor={cursor}")
    assert other.status_code == 422 and "The cursor is not valid." in other.data.decode()


@pytest.mark.parametrize("path", ["/tickets/1/messages", "/tickets/1/edit", "/tickets/1/close", "/tickets/1/reopen",
                                  "/tickets/1/stream-token", "/me/availability"])
def test_changes_are_never_made_by_a_get(help_desk, sign_in, path):
    help_desk.ticket_for(help_desk.requester)
    response = sign_in(help_desk.agent).get(f"/t/{help_desk.slug}{path}?body=x&status=pending")
    assert response.status_code == 405


def test_the_stream_token_goes_to_no_host_a_request_names(services, help_desk):
    proxied = create_app(app_config(services, TRUSTED_PROXIES=1)).test_client()
    person = help_desk.requester
    signed_in = proxied.post(f"/t/{help_desk.slug}/login", data={"email": person.email, "password": person.password})
    assert signed_in.status_code == 302
    ticket = help_desk.ticket_for(help_desk.requester)
    minted = proxied.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/stream-token",
                          headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"})
    assert minted.status_code == 200
    assert minted.get_json()["url"].startswith(f"/t/{help_desk.slug}/api/v1/tickets/{ticket['id']}/stream?token=")


def test_switching_availability_returns_to_the_page_it_was_switched_on(help_desk, sign_in):
    client = sign_in(help_desk.agent)
    page = client.get(f"/t/{help_desk.slug}/?queue=unassigned").data.decode()
    back = re.search(r'name="next" value="([^"]+)"', page).group(1)
    assert back == f"/t/{help_desk.slug}/?queue=unassigned"
    response = client.post(f"/t/{help_desk.slug}/me/availability", data={"next": back})
    assert response.headers["Location"] == back
