"""`attachment_ids` on messages: the author's own unsent uploads on the same ticket, else 422; messages
carry their attachments with status, size, type and thumbnail URL."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import get_attachment, new_ticket, post_message
from tests.media import samples


@pytest.fixture
def ticket(tenant):
    return new_ticket(tenant.api)


def test_a_message_carries_its_attachments_with_their_scan_state(tenant, ticket, upload, run_scans):
    image = upload(tenant.api, ticket["id"], samples.png(), "screen.png").get_json()
    notes = upload(tenant.api, ticket["id"], samples.text(), "notes.txt").get_json()
    resp = post_message(tenant.api, ticket["id"], body="see attached", attachment_ids=[notes["id"], image["id"]])
    assert resp.status_code == 201, resp.get_json()
    message = resp.get_json()
    assert [a["id"] for a in message["attachments"]] == [notes["id"], image["id"]]
    first = message["attachments"][1]
    assert first["status"] == "pending" and first["filename"] == "screen.png" and first["size"] == len(samples.png())
    assert first["content_type"] == "image/png" and first["thumbnail_url"] is None
    assert first["message_id"] == message["id"]
    run_scans(tenant)
    listed = tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"][0]
    by_name = {a["filename"]: a for a in listed["attachments"]}
    assert by_name["screen.png"]["status"] == "clean"
    assert by_name["screen.png"]["thumbnail_url"] == f"/api/v1/attachments/{image['id']}/thumbnail"
    assert by_name["notes.txt"]["thumbnail_url"] is None
    one = tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages/{message['id']}").get_json()
    assert {a["id"] for a in one["attachments"]} == {image["id"], notes["id"]}
    assert get_attachment(tenant.api, image["id"])["message_id"] == message["id"]


def test_a_message_without_attachments_has_an_empty_list(tenant, ticket, media):
    assert post_message(tenant.api, ticket["id"]).get_json()["attachments"] == []


def test_refused_links_are_422_and_post_nothing(tenant, ticket, upload):
    agent = tenant.key_for(tenant.user("agent"))
    other_ticket = new_ticket(tenant.api)
    theirs = upload(agent, ticket["id"], samples.text(), "agent.txt").get_json()
    elsewhere = upload(tenant.api, other_ticket["id"], samples.text(), "elsewhere.txt").get_json()
    mine = upload(tenant.api, ticket["id"], samples.text(), "mine.txt").get_json()
    sent = upload(tenant.api, ticket["id"], samples.text(), "sent.txt").get_json()
    assert post_message(tenant.api, ticket["id"], attachment_ids=[sent["id"]]).status_code == 201
    cases = {
        "someone else's upload": [theirs["id"]],
        "another ticket's upload": [elsewhere["id"]],
        "already sent": [sent["id"]],
        "unknown": [str(uuid.uuid4())],
        "twice": [mine["id"], mine["id"]],
        "one bad among good": [mine["id"], theirs["id"]],
    }
    for case, ids in cases.items():
        resp = post_message(tenant.api, ticket["id"], body=case, attachment_ids=ids)
        assert resp.status_code == 422, (case, resp.get_json())
        assert "attachment_ids" in resp.get_json()["errors"], case
    assert post_message(tenant.api, ticket["id"], attachment_ids=["not-a-uuid"]).status_code == 422
    assert post_message(tenant.api, ticket["id"], attachment_ids=[str(uuid.uuid4())] * 21).status_code == 422
    messages = tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]
    assert [m["seq"] for m in messages] == [1]  # no refused message took a seq
    assert get_attachment(tenant.api, mine["id"])["message_id"] is None
    assert post_message(tenant.api, ticket["id"], attachment_ids=[mine["id"]]).status_code == 201


def test_an_internal_notes_files_become_internal(tenant, ticket, upload):
    agent = tenant.key_for(tenant.user("agent"))
    body = upload(agent, ticket["id"], samples.text(), "a.txt").get_json()
    note = post_message(agent, ticket["id"], internal=True, attachment_ids=[body["id"]]).get_json()
    assert note["attachments"][0]["internal"] is True


def test_a_requester_attaches_their_own_upload_to_their_message(tenant, upload):
    requester = tenant.key_for(tenant.user("requester"))
    ticket = new_ticket(requester)
    body = upload(requester, ticket["id"], samples.text(), "log.txt").get_json()
    message = post_message(requester, ticket["id"], attachment_ids=[body["id"]]).get_json()
    assert message["attachments"][0]["internal"] is False
    assert get_attachment(tenant.api, body["id"])["message_id"] == message["id"]


def test_a_requester_learns_nothing_of_a_file_they_may_not_see_from_a_refused_link(tenant, upload):
    """A requester linking staff's unsent upload or a note's file was told "uploaded by someone else" or
    "already on a message", where a GET of it answers 404: such a file is no upload on their ticket."""
    requester = tenant.key_for(tenant.user("requester"))
    agent = tenant.key_for(tenant.user("agent"))
    ticket = new_ticket(requester)
    unsent = upload(agent, ticket["id"], samples.text(), "unsent.txt").get_json()
    noted = upload(agent, ticket["id"], samples.text(), "noted.txt").get_json()
    assert post_message(agent, ticket["id"], internal=True, attachment_ids=[noted["id"]]).status_code == 201
    public = upload(agent, ticket["id"], samples.text(), "public.txt").get_json()
    assert post_message(agent, ticket["id"], attachment_ids=[public["id"]]).status_code == 201
    unknown = str(uuid.uuid4())
    for hidden in (unsent["id"], noted["id"], unknown):
        assert requester.get(f"/api/v1/attachments/{hidden}").status_code == 404
        resp = post_message(requester, ticket["id"], attachment_ids=[hidden])
        assert resp.status_code == 422
        assert resp.get_json()["errors"]["attachment_ids"] == [f"{hidden} is not an upload on this ticket."]
    seen = post_message(requester, ticket["id"], attachment_ids=[public["id"]])  # they see it: said as it is
    assert seen.get_json()["errors"]["attachment_ids"] == [f"{public['id']} was uploaded by someone else."]
    staff = post_message(tenant.api, ticket["id"], attachment_ids=[unsent["id"]])
    assert staff.get_json()["errors"]["attachment_ids"] == [f"{unsent['id']} was uploaded by someone else."]
