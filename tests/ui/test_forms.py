"""Every form on the pages, through the plain test client: what it changes, and what it says when refused.

Errors come in plain words beside the field, with the status the API would answer, and a refused
form changes nothing.
"""

from __future__ import annotations

import io
import re
import threading
from html import unescape

import pytest

from app import create_app
from tests.helpers import app_config, post_message


def page_of(client, hd, ticket) -> str:
    return client.get(f"/t/{hd.slug}/tickets/{ticket['number']}").data.decode()


def api_ticket(hd, ticket) -> dict:
    return hd.tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()


def etag_in(page: str) -> str:
    return re.search(r'id="panel-form" data-version="([^"]+)"', page).group(1)


@pytest.fixture
def ticket(help_desk):
    return help_desk.ticket_for(help_desk.requester, title="Printer on fire", description="It is on fire.")


# --- new ticket -------------------------------------------------------------------------------


def test_control_characters_in_a_form_are_refused_before_any_view(help_desk, sign_in):
    client = sign_in(help_desk.requester)
    response = client.post(f"/t/{help_desk.slug}/tickets/new", data={"title": "bell\x07"})
    assert response.status_code == 422 and "Control characters are not allowed." in response.data.decode()
    assert help_desk.tenant.api.get("/api/v1/tickets").get_json()["items"] == []


def test_a_new_ticket_opens_and_lands_on_its_page(help_desk, sign_in):
    client = sign_in(help_desk.requester)
    response = client.post(f"/t/{help_desk.slug}/tickets/new", data={
        "title": "VPN drops", "description": "Every **hour**.", "priority": "urgent", "category": ""})
    assert response.status_code == 302
    number = int(response.headers["Location"].rsplit("/", 1)[1])
    found = help_desk.tenant.api.get(f"/api/v1/tickets/by-number/{number}").get_json()
    assert (found["title"], found["priority"], found["category"], found["requester_id"]) == (
        "VPN drops", "urgent", None, help_desk.requester.id)
    page = client.get(response.headers["Location"]).data.decode()
    assert "is open. Replies appear on this page" in page and "Every <strong>hour</strong>." in page


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"title": ""}, "title", "This is required."),
    ({"title": "   "}, "title", "This is required."),
    ({"title": "x" * 201}, "title", "Length must be between 1 and 200."),
    ({"title": "ok", "priority": "whenever"}, "priority", "Must be one of: low, normal, high, urgent."),
    ({"title": "ok", "category": "c" * 101}, "category", "Length must be between 1 and 100."),
    ({"title": "ok", "description": "é" * 40000}, "description", "Longer than 65536 bytes (64 KiB)."),
])
def test_a_refused_new_ticket_says_why_beside_the_field(help_desk, sign_in, fields, field, message):
    client = sign_in(help_desk.requester)
    response = client.post(f"/t/{help_desk.slug}/tickets/new", data={"description": "kept", **fields})
    assert response.status_code == 422
    page = response.data.decode()
    assert f'<p class="field-error" id="{field}-error">{message}</p>' in page
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', page)
    assert "kept" in page or field == "description"  # what was typed is still there
    assert help_desk.tenant.api.get("/api/v1/tickets").get_json()["items"] == []


def test_an_agent_opens_a_ticket_for_a_requester_named_by_email(help_desk, sign_in):
    """A call or an email taken by an agent: the ticket is the customer's, as in any help desk."""
    hd = help_desk
    agent = sign_in(hd.agent)
    form = agent.get(f"/t/{hd.slug}/tickets/new").data.decode()
    assert 'id="requester" name="requester"' in form
    unknown = agent.post(f"/t/{hd.slug}/tickets/new", data={"title": "Phoned in", "requester": "nobody@example.com"})
    assert unknown.status_code == 422
    page = unknown.data.decode()
    assert re.search(r'id="requester"[^>]*aria-invalid="true"', page) and "No one in this organization" in page
    assert 'value="nobody@example.com"' in page and 'value="Phoned in"' in page  # what was typed is kept
    assert hd.tenant.api.get("/api/v1/tickets").get_json()["items"] == []
    opened = agent.post(f"/t/{hd.slug}/tickets/new", data={"title": "Phoned in",
                                                           "requester": f"  {hd.requester.email.upper()} "})
    assert opened.status_code == 302, opened.data.decode()[:500]
    number = int(opened.headers["Location"].rsplit("/", 1)[1])
    found = hd.tenant.api.get(f"/api/v1/tickets/by-number/{number}").get_json()
    assert found["requester_id"] == hd.requester.id
    # With a file: the message carrying it is the ticket's opening, not the agent's first response.
    with_file = agent.post(f"/t/{hd.slug}/tickets/new", content_type="multipart/form-data", data={
        "title": "Phoned in, log attached", "requester": hd.requester.email,
        "file": (io.BytesIO(b"error log"), "log.txt")})
    assert with_file.status_code == 302, with_file.data.decode()[:500]
    number = int(with_file.headers["Location"].rsplit("/", 1)[1])
    found = hd.tenant.api.get(f"/api/v1/tickets/by-number/{number}").get_json()
    assert (found["requester_id"], found["first_response_at"], found["first_response_seconds"]) == (
        hd.requester.id, None, None)
    messages = hd.tenant.api.get(f"/api/v1/tickets/{found['id']}/messages").get_json()["items"]
    assert [(m["author_id"], m["internal"], len(m["attachments"])) for m in messages] == [(hd.agent.id, False, 1)]
    mine = agent.post(f"/t/{hd.slug}/tickets/new", data={"title": "My own", "requester": ""})
    number = int(mine.headers["Location"].rsplit("/", 1)[1])
    assert hd.tenant.api.get(f"/api/v1/tickets/by-number/{number}").get_json()["requester_id"] == hd.agent.id


def test_a_requester_has_no_requester_box_and_cannot_open_a_ticket_for_someone_else(help_desk, sign_in):
    hd = help_desk
    client = sign_in(hd.requester)
    assert 'name="requester"' not in client.get(f"/t/{hd.slug}/tickets/new").data.decode()
    sent = client.post(f"/t/{hd.slug}/tickets/new", data={"title": "Mine", "requester": hd.other_requester.email})
    number = int(sent.headers["Location"].rsplit("/", 1)[1])
    assert hd.tenant.api.get(f"/api/v1/tickets/by-number/{number}").get_json()["requester_id"] == hd.requester.id


# --- replies ----------------------------------------------------------------------------------


def test_a_reply_posted_as_a_plain_form(help_desk, ticket, sign_in):
    client = sign_in(help_desk.requester)
    response = client.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/messages", data={"body": "Still on fire"})
    assert response.status_code == 302
    message = help_desk.tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"][0]
    assert response.headers["Location"].endswith(f"/tickets/{ticket['number']}#m-{message['id']}")
    assert (message["body"], message["internal"], message["author_id"]) == ("Still on fire", False,
                                                                            help_desk.requester.id)
    agent = sign_in(help_desk.agent)
    thread = agent.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/messages",
                        data={"body": "In the thread", "parent_id": message["id"], "internal": "on"})
    assert thread.status_code == 302
    note = help_desk.tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"][1]
    assert (note["parent_id"], note["internal"]) == (message["id"], True)
    page = page_of(agent, help_desk, ticket)
    assert page.index("Still on fire") < page.index("In the thread")
    assert re.search(r'<ol class="replies">\s*<li><article class="msg msg--internal msg--reply"', page)


def test_a_refused_reply_keeps_the_text_and_says_why(help_desk, ticket, sign_in):
    client = sign_in(help_desk.requester)
    blank = client.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/messages", data={"body": "  "})
    assert blank.status_code == 422
    assert '<p class="field-error" id="body-error">This is required.</p>' in blank.data.decode()
    other = help_desk.ticket_for(help_desk.requester, title="Another")
    elsewhere = post_message(help_desk.tenant.api, other["id"]).get_json()
    wrong = client.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/messages",
                        data={"body": "my words", "parent_id": elsewhere["id"]})
    assert wrong.status_code == 422
    assert "The parent message is not on this ticket." in wrong.data.decode()
    assert "my words" in wrong.data.decode()
    assert help_desk.tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"] == []


def test_reply_to_without_script_puts_the_composer_in_the_thread(help_desk, ticket, sign_in):
    requester_key = help_desk.tenant.key_for(help_desk.requester.user)
    first = post_message(requester_key, ticket["id"], body="First words").get_json()
    client = sign_in(help_desk.agent)
    page = client.get(f"/t/{help_desk.slug}/tickets/{ticket['number']}?reply_to={first['id']}").data.decode()
    assert "Replying in thread to" in page and f'name="parent_id" value="{first["id"]}"' in page
    for junk in ("nope", "00000000-0000-0000-0000-000000000000"):
        assert "Replying in thread" not in client.get(
            f"/t/{help_desk.slug}/tickets/{ticket['number']}?reply_to={junk}").data.decode()


def test_reply_to_an_internal_note_without_script_is_a_note(help_desk, ticket, sign_in):
    """A public reply would show the requester the note's id as its parent, so the page offers only a note."""
    hd = help_desk
    note = post_message(hd.tenant.key_for(hd.agent.user), ticket["id"], body="VIP", internal=True).get_json()
    client = sign_in(hd.agent)
    page = client.get(f"/t/{hd.slug}/tickets/{ticket['number']}?reply_to={note['id']}").data.decode()
    composer = page[page.index('<form id="composer"'):]
    composer = composer[:composer.index("</form>")]
    assert re.search(r'<input type="checkbox" id="internal" name="internal"[^>]* checked disabled>', composer)
    assert '<input type="hidden" name="internal" value="on">' in composer
    assert "is-internal" in composer and ">Add internal note</button>" in composer
    # What the form sends: the hidden field, as a disabled checkbox is not sent.
    posted = client.post(f"/t/{hd.slug}/tickets/{ticket['number']}/messages",
                         data={"body": "Agreed", "parent_id": note["id"], "internal": "on"})
    assert posted.status_code == 302
    reply = hd.tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"][-1]
    assert (reply["body"], reply["parent_id"], reply["internal"]) == ("Agreed", note["id"], True)
    public = client.post(f"/t/{hd.slug}/tickets/{ticket['number']}/messages",
                         data={"body": "Public words", "parent_id": note["id"]})
    assert public.status_code == 422
    assert "A public message cannot reply to an internal note" in public.data.decode()
    answer = post_message(hd.tenant.key_for(hd.agent.user), ticket["id"], body="Public").get_json()
    plain = client.get(f"/t/{hd.slug}/tickets/{ticket['number']}?reply_to={answer['id']}").data.decode()
    plain = plain[plain.index('<form id="composer"'):]
    assert 'name="internal" value="on"' not in plain[:plain.index("</form>")]


def test_a_refused_reply_to_an_internal_note_stays_a_note_in_its_thread(help_desk, ticket, sign_in):
    """Without the lock the page would offer a public reply to the note, which is refused."""
    hd = help_desk
    note = post_message(hd.tenant.key_for(hd.agent.user), ticket["id"], body="VIP", internal=True).get_json()
    client = sign_in(hd.agent)
    refused = client.post(f"/t/{hd.slug}/tickets/{ticket['number']}/messages",
                          data={"body": "x" * (64 * 1024 + 1), "parent_id": note["id"], "internal": "on"})
    assert refused.status_code == 422
    page = refused.data.decode()
    assert '<p class="field-error" id="body-error">Length must be between 1 and 65536.</p>' in page
    composer = page[page.index('<form id="composer"'):]
    composer = composer[:composer.index("</form>")]
    assert "Replying in thread to" in composer and f'name="parent_id" value="{note["id"]}"' in composer
    assert re.search(r'<input type="checkbox" id="internal" name="internal"[^>]* checked disabled>', composer)
    assert '<input type="hidden" name="internal" value="on">' in composer
    assert "A reply to an internal note is an internal note too" in composer
    assert hd.tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"][-1]["id"] == note["id"]


# --- the side panel ---------------------------------------------------------------------------


def test_the_panel_saves_only_what_changed(help_desk, ticket, sign_in):
    client = sign_in(help_desk.agent)
    page = page_of(client, help_desk, ticket)
    assert etag_in(page) == "v1"  # the page's record of the version it shows, for its live updates
    base = {"status": "new", "was_status": "new", "priority": "normal",
            "was_priority": "normal", "assignee_id": "", "was_assignee_id": "", "team_id": "", "was_team_id": ""}
    # Assigning a new ticket opens it, although the form still says "new" in status.
    response = client.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/edit",
                           data={**base, "assignee_id": help_desk.agent2.id, "team_id": help_desk.team["id"]})
    assert response.status_code == 302
    after = api_ticket(help_desk, ticket)
    assert (after["status"], after["assignee_id"], after["team_id"]) == ("open", help_desk.agent2.id,
                                                                         help_desk.team["id"])
    assert "Saved." in client.get(response.headers["Location"]).data.decode()
    why = page_of(client, help_desk, ticket)
    assert "Assigned by hand" in why


def test_the_panel_shows_who_asked_and_changes_category_and_tags(help_desk, sign_in):
    hd = help_desk
    ticket = hd.ticket_for(hd.requester, title="Invoice twice", category="billing", tags=["vip", "invoices"])
    client = sign_in(hd.agent)
    page = page_of(client, hd, ticket)
    assert hd.requester.user["email"] in page and hd.requester.user["name"] in page
    assert 'name="was_tags" value="invoices, vip"' in page and 'name="was_category" value="billing"' in page
    url = f"/t/{hd.slug}/tickets/{ticket['number']}/edit"
    form = {"was_category": "billing", "was_tags": "invoices, vip", "category": "billing",
            "tags": " vip ,invoices"}  # the same tags, written another way: nothing changed
    assert client.post(url, data=form).status_code == 302
    assert api_ticket(hd, ticket)["version"] == ticket["version"]
    saved = client.post(url, data={**form, "category": "refunds", "tags": "vip, invoices, urgent"})
    assert saved.status_code == 302
    after = api_ticket(hd, ticket)
    assert (after["category"], after["tags"]) == ("refunds", ["invoices", "urgent", "vip"])
    # Another agent changed the tags since this form was read: told, nothing overwritten.
    late = client.post(url, data={**form, "tags": "vip"})
    assert late.status_code == 412 and api_ticket(hd, ticket)["tags"] == ["invoices", "urgent", "vip"]
    refused = client.post(url, data={"was_tags": "invoices, urgent, vip", "tags": "x" * 65,
                                     "was_category": "refunds", "category": ""})
    assert refused.status_code == 422 and 'id="tags-error"' in refused.data.decode()
    cleared = client.post(url, data={"was_category": "refunds", "category": "", "was_tags": "invoices, urgent, vip",
                                     "tags": ""})
    assert cleared.status_code == 302
    assert (api_ticket(hd, ticket)["category"], api_ticket(hd, ticket)["tags"]) == (None, [])


def test_the_panel_saves_over_category_and_tags_a_text_box_cannot_hold_as_they_are(help_desk, sign_in, in_tenant):
    """A category with a line break (a text box drops it) or a tag with a comma (the box's separator,
    refused since, but kept by tickets from before) made every save of the panel refused as "changed
    by someone else", whatever the agent changed."""
    import sqlalchemy as sa

    from app.tickets.models import Ticket

    hd = help_desk
    ticket = hd.ticket_for(hd.requester, title="Odd labels", category="billing\nrefunds")
    with in_tenant(hd.tenant) as session:  # tags written before labels refused a comma or an edge space
        session.execute(sa.update(Ticket).where(Ticket.number == ticket["number"]).values(tags=[" x", "a,b"]))
        session.commit()
    client = sign_in(hd.agent)
    page = page_of(client, hd, ticket)
    was = {name: unescape(re.search(rf'name="was_{name}" value="([^"]*)"', page).group(1))
           for name in ("status", "priority", "assignee_id", "team_id", "category", "tags")}
    shown = {name: unescape(re.search(rf'id="{name}" name="{name}" value="([^"]*)"', page).group(1))
             for name in ("category", "tags")}
    form = {**{f"was_{k}": v for k, v in was.items()}, **{k: v for k, v in was.items() if k not in shown},
            "category": shown["category"].replace("\n", ""), "tags": shown["tags"]}  # as a browser sends them
    saved = client.post(f"/t/{hd.slug}/tickets/{ticket['number']}/edit", data={**form, "priority": "urgent"})
    assert saved.status_code == 302, saved.data.decode()[:300]
    after = api_ticket(hd, ticket)
    assert (after["priority"], after["category"], after["tags"]) == ("urgent", "billing\nrefunds", [" x", "a,b"])


def test_two_agents_editing_one_ticket_the_second_is_told_and_nothing_is_overwritten(help_desk, ticket, sign_in):
    first, second = sign_in(help_desk.agent), sign_in(help_desk.agent2)
    seen = etag_in(page_of(second, help_desk, ticket))
    form = {"was_status": "new", "was_priority": "normal", "was_assignee_id": "", "was_team_id": ""}
    saved = first.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/edit", data={**form, "priority": "urgent"})
    assert saved.status_code == 302
    late = second.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/edit",
                       data={**form, "priority": "low", "status": "pending"})
    assert late.status_code == 412
    page = late.data.decode()
    assert "Someone else changed this ticket while you were editing it, so nothing was saved." in page
    assert re.search(r'<option value="urgent" selected>', page), "the form shows the current values"
    assert etag_in(page) != seen
    after = api_ticket(help_desk, ticket)
    assert (after["priority"], after["status"]) == ("urgent", "new")


def test_the_panel_saves_when_only_other_things_changed_since(help_desk, ticket, sign_in):
    """A new message, or another agent's change to another field, is no reason to refuse the panel."""
    agent, other = sign_in(help_desk.agent), sign_in(help_desk.agent2)
    shown = etag_in(page_of(agent, help_desk, ticket))
    form = {"was_status": "new", "was_priority": "normal", "was_assignee_id": "", "was_team_id": ""}
    assert help_desk.tenant.api.post(f"/api/v1/tickets/{ticket['id']}/messages",
                                     json={"body": "Any news?"}).status_code == 201
    assert other.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/edit",
                      data={**form, "team_id": help_desk.team["id"]}).status_code == 302
    assert etag_in(page_of(agent, help_desk, ticket)) != shown
    saved = agent.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/edit", data={**form, "priority": "high"})
    assert saved.status_code == 302
    after = api_ticket(help_desk, ticket)
    assert (after["priority"], after["team_id"]) == ("high", help_desk.team["id"])


def test_the_panel_saves_over_a_ticket_changed_after_the_page_read_it(help_desk, ticket, sign_in, monkeypatch):
    """The view reads the ticket, then a message lands before the save locks it: the save reads it again."""
    from app.tickets import ui

    agent = sign_in(help_desk.agent)
    read = ui.services.ticket_by_number

    def read_then_a_message_lands(actor, number):
        found = read(actor, number)
        posted = []  # from another thread, as another request would: this one's tenant context stays its own
        poster = threading.Thread(target=lambda: posted.append(post_message(help_desk.tenant.api, ticket["id"])))
        poster.start()
        poster.join(10)
        assert posted and posted[0].status_code == 201
        return found

    monkeypatch.setattr(ui.services, "ticket_by_number", read_then_a_message_lands)
    form = {"was_status": "new", "was_priority": "normal", "was_assignee_id": "", "was_team_id": ""}
    saved = agent.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/edit", data={**form, "priority": "high"})
    assert saved.status_code == 302
    after = api_ticket(help_desk, ticket)
    assert (after["priority"], after["version"]) == ("high", 3)


def test_the_panel_refuses_in_plain_words(help_desk, ticket, sign_in):
    client = sign_in(help_desk.agent)
    form = {"was_assignee_id": "", "was_status": "new"}
    not_staff = client.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/edit",
                            data={**form, "assignee_id": help_desk.requester.id})
    assert not_staff.status_code == 422
    assert ('<p class="field-error" id="assignee_id-error">Must be an active agent or admin of this organization.</p>'
            in not_staff.data.decode())
    bad = client.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/edit", data={**form, "status": "closed"})
    assert bad.status_code == 422 and "Close a ticket with POST" in bad.data.decode()
    assert api_ticket(help_desk, ticket)["assignee_id"] is None


def test_close_and_reopen(help_desk, ticket, sign_in):
    agent = sign_in(help_desk.agent)
    closed = agent.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/close", data={"resolution": "Fuser replaced"})
    assert closed.status_code == 302
    state = api_ticket(help_desk, ticket)
    assert (state["status"], state["resolution"]) == ("closed", "Fuser replaced")
    again = agent.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/close", data={})
    assert again.status_code == 409 and "The ticket is already closed." in again.data.decode()
    edit = agent.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/edit",
                      data={"priority": "high", "was_priority": "normal"})
    assert edit.status_code == 409 and "reopen it before changing it" in edit.data.decode()
    requester = sign_in(help_desk.requester)
    page = page_of(requester, help_desk, ticket)
    assert 'data-status="closed"' in page and "This ticket is closed." in page
    assert requester.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/reopen").status_code == 302
    assert api_ticket(help_desk, ticket)["status"] == "new"
    assert requester.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/close").status_code == 302
    assert api_ticket(help_desk, ticket)["status"] == "closed"


# --- availability -----------------------------------------------------------------------------


def test_an_agent_switches_their_own_availability(help_desk, sign_in):
    client = sign_in(help_desk.agent)
    home = client.get(f"/t/{help_desk.slug}/").data.decode()
    assert "Available" in home
    away = client.post(f"/t/{help_desk.slug}/me/availability", data={"next": f"/t/{help_desk.slug}/?queue=open"})
    assert away.status_code == 302 and away.headers["Location"] == f"/t/{help_desk.slug}/?queue=open"
    assert help_desk.tenant.api.get(f"/api/v1/users/{help_desk.agent.id}").get_json()["available"] is False
    assert "You are away" in client.get(away.headers["Location"]).data.decode()
    back = client.post(f"/t/{help_desk.slug}/me/availability", data={"available": "on", "next": "//evil.example/"})
    assert back.headers["Location"] == f"/t/{help_desk.slug}/"  # never off-site
    assert help_desk.tenant.api.get(f"/api/v1/users/{help_desk.agent.id}").get_json()["available"] is True
    assert help_desk.tenant.api.get(f"/api/v1/users/{help_desk.agent2.id}").get_json()["available"] is True


# --- lists ------------------------------------------------------------------------------------


def test_queues_count_sort_and_search(help_desk, sign_in, in_tenant):
    hd = help_desk
    mine = hd.ticket_for(hd.requester, title="Printer on fire", priority="urgent")
    hd.ticket_for(hd.requester, title="Password reset mail never arrives", priority="low")
    closed = hd.ticket_for(hd.requester, title="Old closed thing")
    key = hd.tenant.key_for(hd.agent.user)
    assert key.patch(f"/api/v1/tickets/{mine['id']}", json={"assignee_id": hd.agent.id,
                                                            "team_id": hd.team["id"]}).status_code == 200
    assert hd.tenant.api.post(f"/api/v1/tickets/{closed['id']}/close", json={}).status_code == 200
    post_message(key, mine["id"], body="toner everywhere")
    client = sign_in(hd.agent)
    page = client.get(f"/t/{hd.slug}/").data.decode()
    counts = dict(re.findall(r'>(Mine|My teams|Unassigned|All open) <span class="count"[^>]*>(\d+)<', page))
    assert counts == {"Mine": "1", "My teams": "1", "Unassigned": "1", "All open": "2"}
    assert "Printer on fire" in page and "Password reset" not in page
    every = client.get(f"/t/{hd.slug}/?queue=open&sort=-priority").data.decode()
    assert every.index("Printer on fire") < every.index("Password reset") and "Old closed thing" not in every
    ascending = client.get(f"/t/{hd.slug}/?queue=open&sort=priority").data.decode()
    assert ascending.index("Password reset") < ascending.index("Printer on fire")
    found = client.get(f"/t/{hd.slug}/?queue=open&q=toner").data.decode()
    assert "Printer on fire" in found and "Password reset" not in found
    nothing = client.get(f"/t/{hd.slug}/?queue=open&q=zebra").data.decode()
    assert "No tickets match “zebra”" in nothing
    bad = client.get(f"/t/{hd.slug}/?queue=open&sort=colour")
    assert bad.status_code == 422 and '<p class="field-error" id="sort-error">' not in bad.data.decode()
    assert "Must be one of" in bad.data.decode()


def test_my_tickets_filter_by_status_and_page(help_desk, sign_in):
    hd = help_desk
    for i in range(21):
        hd.ticket_for(hd.requester, title=f"Ticket {i:02d}")
    hd.ticket_for(hd.other_requester, title="Not yours")
    client = sign_in(hd.requester)
    first = client.get(f"/t/{hd.slug}/").data.decode()
    assert "Ticket 20" in first and "Ticket 00" not in first and "Not yours" not in first
    cursor = re.search(r'href="[^"]*cursor=([^"&]+)"[^>]*rel="next"', first).group(1)
    second = client.get(f"/t/{hd.slug}/?cursor={cursor}").data.decode()
    assert "Ticket 00" in second and "Ticket 20" not in second and 'rel="next"' not in second
    closed = client.get(f"/t/{hd.slug}/?status=closed").data.decode()
    assert "No closed tickets" in closed
    open_ones = client.get(f"/t/{hd.slug}/?status=new,open,pending").data.decode()
    assert "Ticket 20" in open_ones and '<option value="new,open,pending" selected>Open</option>' in open_ones
    bad = client.get(f"/t/{hd.slug}/?status=lost")
    assert bad.status_code == 422 and "Must be one of" in bad.data.decode()
    forged = client.get(f"/t/{hd.slug}/?cursor=forged")
    assert forged.status_code == 422 and "The cursor is not valid." in forged.data.decode()


# --- CSRF -------------------------------------------------------------------------------------


def test_every_form_needs_its_csrf_token(services, help_desk, ticket):
    strict = create_app(app_config(services, WTF_CSRF_ENABLED=True)).test_client()
    slug, n = help_desk.slug, ticket["number"]
    login = strict.get(f"/t/{slug}/login").data.decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login).group(1)
    assert strict.post(f"/t/{slug}/login", data={"email": help_desk.agent.email, "password": "password123",
                                                  "csrf_token": token}).status_code == 302
    posts = {f"/tickets/{n}/messages": {"body": "forged"}, f"/tickets/{n}/edit": {"priority": "urgent",
                                                                                  "was_priority": "normal"},
             f"/tickets/{n}/close": {}, f"/tickets/{n}/reopen": {}, f"/tickets/{n}/stream-token": {},
             "/tickets/new": {"title": "forged"}, "/me/availability": {}, "/logout": {}}
    for path, data in posts.items():
        response = strict.post(f"/t/{slug}{path}", data=data)
        assert response.status_code == 400, path
        assert b"The CSRF token is missing." in response.data, path
    state = api_ticket(help_desk, ticket)
    assert (state["status"], state["priority"]) == ("new", "normal")
    assert help_desk.tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"] == []
    assert help_desk.tenant.api.get(f"/api/v1/users/{help_desk.agent.id}").get_json()["available"] is True
    page = strict.get(f"/t/{slug}/tickets/{n}").data.decode()
    assert page.count('name="csrf_token"') >= 5  # every form on the page carries it
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    assert strict.post(f"/t/{slug}/tickets/{n}/messages", data={"body": "real", "csrf_token": token}).status_code == 302
    minted = strict.post(f"/t/{slug}/tickets/{n}/stream-token", headers={"X-CSRFToken": token})
    assert minted.status_code == 200 and minted.get_json()["url"].startswith(f"/t/{slug}/api/v1/")


def test_threads_fold_beyond_two_replies(help_desk, ticket, sign_in):
    requester_key = help_desk.tenant.key_for(help_desk.requester.user)
    agent_key = help_desk.tenant.key_for(help_desk.agent.user)
    root = post_message(requester_key, ticket["id"], body="root words").get_json()
    first = post_message(agent_key, ticket["id"], body="reply 1", parent_id=root["id"]).get_json()
    post_message(requester_key, ticket["id"], body="reply 2", parent_id=first["id"])  # a reply to a reply
    post_message(agent_key, ticket["id"], body="reply 3", parent_id=root["id"])
    post_message(agent_key, ticket["id"], body="reply 4", parent_id=root["id"])
    post_message(requester_key, ticket["id"], body="another thread")
    page = page_of(sign_in(help_desk.requester), help_desk, ticket)
    folded = re.search(r'<details class="earlier"><summary>Show 2 earlier replies</summary>(.*?)</details>', page, re.S)
    assert folded and "reply 1" in folded.group(1) and "reply 2" in folded.group(1)
    shown = page[folded.end():page.index("another thread")]
    assert "reply 3" in shown and "reply 4" in shown
    assert page.index("root words") < folded.start() < page.index("another thread")
