"""Who may open which page, with the plain Flask test client: every page, every refusal.

Signed-out users are sent to sign in; a requester sees only their own tickets and no queue; a
session of one tenant opens nothing of another; another tenant's ticket numbers answer 404; and
whatever is refused changes nothing.
"""

from __future__ import annotations

import pytest

from tests.helpers import post_message
from tests.ui.conftest import make_help_desk

TICKET_PAGES = ("/tickets/{n}",)
TICKET_POSTS = ("/tickets/{n}/messages", "/tickets/{n}/edit", "/tickets/{n}/close", "/tickets/{n}/reopen",
                "/tickets/{n}/stream-token")
OTHER_POSTS = ("/tickets/new", "/me/availability")


def messages_of(hd, ticket) -> list[dict]:
    return hd.tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]


def state_of(hd, ticket) -> dict:
    return hd.tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()


@pytest.fixture
def ticket(help_desk):
    return help_desk.ticket_for(help_desk.requester, title="Printer on fire", description="It is on fire.")


def test_signed_out_users_are_sent_to_sign_in_from_every_page(client, help_desk, ticket):
    slug, n = help_desk.slug, ticket["number"]
    for path in ("/", "/?queue=open", "/tickets/new", *TICKET_PAGES, "/tickets/{n}/participants"):
        response = client.get(f"/t/{slug}" + path.format(n=n))
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith(f"/t/{slug}/login?next="), path
    for path in (*TICKET_POSTS, *OTHER_POSTS):
        response = client.post(f"/t/{slug}" + path.format(n=n), data={"body": "hi", "title": "x", "status": "pending"})
        assert response.status_code == 302 and "/login" in response.headers["Location"], path
    assert messages_of(help_desk, ticket) == []
    assert state_of(help_desk, ticket)["status"] == "new"
    assert [t["title"] for t in help_desk.tenant.api.get("/api/v1/tickets").get_json()["items"]] == ["Printer on fire"]


def test_a_requester_cannot_open_another_requesters_ticket(help_desk, ticket, sign_in):
    other = sign_in(help_desk.other_requester)
    slug, n = help_desk.slug, ticket["number"]
    assert other.get(f"/t/{slug}/tickets/{n}").status_code == 404
    assert other.get(f"/t/{slug}/tickets/{n}/participants").status_code == 404
    for path in TICKET_POSTS:
        response = other.post(f"/t/{slug}" + path.format(n=n), data={"body": "mine now", "status": "pending"})
        assert response.status_code == 404, path
        assert b"Printer on fire" not in response.data and b"It is on fire" not in response.data, path
    home = other.get(f"/t/{slug}/")
    assert home.status_code == 200 and b"Printer on fire" not in home.data
    assert b"You have no tickets yet" in home.data
    assert messages_of(help_desk, ticket) == [] and state_of(help_desk, ticket)["status"] == "new"
    # Its own requester can do all of it.
    own = sign_in(help_desk.requester)
    assert own.get(f"/t/{slug}/tickets/{n}").status_code == 200
    assert b"Printer on fire" in own.get(f"/t/{slug}/").data


@pytest.mark.parametrize("queue", ["mine", "team", "unassigned", "open", "nonsense"])
def test_a_requester_cannot_open_the_agent_queues(help_desk, ticket, sign_in, queue):
    other = sign_in(help_desk.other_requester)
    response = other.get(f"/t/{help_desk.slug}/?queue={queue}")
    assert response.status_code == 403
    assert b"Queues are for agents and admins." in response.data
    assert b"Printer on fire" not in response.data


def test_a_requester_cannot_change_what_only_staff_change(help_desk, ticket, sign_in):
    requester = sign_in(help_desk.requester)
    slug, n = help_desk.slug, ticket["number"]
    page = requester.get(f"/t/{slug}/tickets/{n}").data.decode()
    assert 'id="panel-form"' not in page and "assignee_id" not in page and 'name="internal"' not in page
    edit = requester.post(f"/t/{slug}/tickets/{n}/edit", data={
        "status": "pending", "was_status": "new", "assignee_id": help_desk.agent.id, "was_assignee_id": ""})
    assert edit.status_code == 403
    assert b"Requesters may not change" in edit.data
    note = requester.post(f"/t/{slug}/tickets/{n}/messages", data={"body": "psst", "internal": "on"})
    assert note.status_code == 403
    assert b"Only agents and admins may post internal notes." in note.data
    after = state_of(help_desk, ticket)
    assert after["status"] == "new" and after["assignee_id"] is None and messages_of(help_desk, ticket) == []


def test_another_tenants_session_sees_nothing(make_tenant, sign_in):
    a, b = make_help_desk(make_tenant()), make_help_desk(make_tenant())
    theirs = b.ticket_for(b.requester, title="Tenant B's secret")
    for person in (a.agent, a.admin, a.requester):
        client = sign_in(person)
        for path in ("/", "/?queue=open", "/tickets/new", f"/tickets/{theirs['number']}",
                     f"/tickets/{theirs['number']}/participants"):
            response = client.get(f"/t/{b.slug}{path}")
            assert response.status_code == 302, path  # a session belongs to its own tenant: sign in there
            assert response.headers["Location"].startswith(f"/t/{b.slug}/login"), path
        for path in TICKET_POSTS:
            response = client.post(f"/t/{b.slug}" + path.format(n=theirs["number"]), data={"body": "x"})
            assert response.status_code == 302, path
        # Under its own tenant, the other tenant's number is just a number that does not exist here.
        assert client.get(f"/t/{a.slug}/tickets/{theirs['number']}").status_code == 404
    assert messages_of(b, theirs) == [] and state_of(b, theirs)["status"] == "new"


def test_numbers_that_are_not_tickets_answer_404(help_desk, sign_in, ticket):
    agent = sign_in(help_desk.agent)
    for number in (0, ticket["number"] + 1, 2**63, 10**30):
        assert agent.get(f"/t/{help_desk.slug}/tickets/{number}").status_code == 404
    assert agent.get(f"/t/{help_desk.slug}/tickets/-1").status_code == 404
    assert agent.get(f"/t/{help_desk.slug}/tickets/abc").status_code == 404


def test_staff_open_every_queue_and_ticket(help_desk, ticket, sign_in):
    for person in (help_desk.agent, help_desk.agent2, help_desk.admin):
        client = sign_in(person)
        for queue in ("mine", "team", "unassigned", "open"):
            assert client.get(f"/t/{help_desk.slug}/?queue={queue}").status_code == 200, queue
        page = client.get(f"/t/{help_desk.slug}/tickets/{ticket['number']}")
        assert page.status_code == 200 and b'id="panel-form"' in page.data


def test_an_unknown_queue_is_said_in_plain_words(help_desk, sign_in):
    response = sign_in(help_desk.agent).get(f"/t/{help_desk.slug}/?queue=nonsense")
    assert response.status_code == 422
    assert b"There is no such queue." in response.data


def test_internal_notes_never_reach_a_requesters_page(help_desk, ticket, sign_in):
    agent_key = help_desk.tenant.key_for(help_desk.agent.user)
    assert post_message(agent_key, ticket["id"], body="Customer is on the enterprise plan.",
                        internal=True).status_code == 201
    public = post_message(agent_key, ticket["id"], body="We are on it.").get_json()
    # A public reply to the internal note would name it as its parent: only a note may answer a note.
    note_id = messages_of(help_desk, ticket)[0]["id"]
    assert post_message(agent_key, ticket["id"], body="Answering the note", parent_id=note_id).status_code == 422
    assert post_message(agent_key, ticket["id"], body="Answering the note", parent_id=note_id,
                        internal=True).status_code == 201
    requester = sign_in(help_desk.requester)
    page = requester.get(f"/t/{help_desk.slug}/tickets/{ticket['number']}").data.decode()
    assert "We are on it." in page and "Answering the note" not in page and note_id not in page
    assert "enterprise plan" not in page and "Internal note" not in page
    people = requester.get(f"/t/{help_desk.slug}/tickets/{ticket['number']}/participants").get_json()
    assert set(people) == {help_desk.requester.id, help_desk.agent.id}
    assert public["author_id"] == help_desk.agent.id
    staff_page = sign_in(help_desk.agent2).get(f"/t/{help_desk.slug}/tickets/{ticket['number']}").data.decode()
    assert "enterprise plan" in staff_page and "msg--internal" in staff_page


def test_signed_in_pages_are_never_stored_by_the_browser(help_desk, ticket, sign_in):
    client = sign_in(help_desk.requester)
    for path in ("/", f"/tickets/{ticket['number']}", "/tickets/new"):
        assert client.get(f"/t/{help_desk.slug}{path}").headers["Cache-Control"] == "no-store", path
