"""Every input on every page has a label, and the label is the API's field name."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tests.helpers import post_message

FIELD_NAMES = {
    "title", "description", "priority", "category", "tags", "body", "internal", "status", "assignee_id", "team_id",
    "resolution", "q", "sort", "email", "password", "name", "slug", "admin_email", "admin_password",
    "file",  # the multipart part of POST /tickets/{id}/attachments
}


class Form(HTMLParser):
    """Collect the inputs a person can fill in and the labels' text, outside <template> (inert) content."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, str] = {}  # id -> name
        self.labels: dict[str, str] = {}  # for -> text
        self.template = 0
        self.label_for: str | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "template":
            self.template += 1
        elif self.template:
            return
        elif tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit", "button"):
            assert a.get("id"), f"an input without an id: {a}"
            self.inputs[a["id"]] = a.get("name", "")
        elif tag == "label":
            self.label_for, self.text = a.get("for"), []

    def handle_endtag(self, tag):
        if tag == "template":
            self.template -= 1
        elif tag == "label" and self.label_for and not self.template:
            self.labels[self.label_for] = "".join(self.text).strip()
            self.label_for = None

    def handle_data(self, data):
        if self.label_for is not None:
            self.text.append(data)


@pytest.fixture
def pages(app, help_desk, sign_in):
    ticket = help_desk.ticket_for(help_desk.requester)
    post_message(help_desk.tenant.api, ticket["id"], body="hello")
    agent, requester = sign_in(help_desk.agent), sign_in(help_desk.requester)
    slug, n = help_desk.slug, ticket["number"]
    return {
        "sign-in": app.test_client().get(f"/t/{slug}/login"), "sign-up": app.test_client().get("/signup"),
        "queue": agent.get(f"/t/{slug}/"), "agent ticket": agent.get(f"/t/{slug}/tickets/{n}"),
        "new ticket": requester.get(f"/t/{slug}/tickets/new"), "my tickets": requester.get(f"/t/{slug}/"),
        "requester ticket": requester.get(f"/t/{slug}/tickets/{n}"),
    }


def test_every_input_is_labelled_with_its_api_field_name(pages):
    for name, response in pages.items():
        assert response.status_code == 200, name
        form = Form()
        form.feed(response.data.decode())
        assert form.inputs, name
        for input_id, field in form.inputs.items():
            label = form.labels.get(input_id)
            assert label is not None, f"{name}: #{input_id} has no label"
            assert label == field and label in FIELD_NAMES, f"{name}: #{input_id} labelled {label!r}, named {field!r}"


def test_reply_links_say_what_they_answer_and_written_text_keeps_its_direction(help_desk, sign_in):
    hd = help_desk
    ticket = hd.ticket_for(hd.requester, title="الطابعة لا تعمل", description="مرحبا")
    hd.tenant.key_for(hd.agent.user).post(f"/api/v1/tickets/{ticket['id']}/messages", json={"body": "On it"})
    page = sign_in(hd.requester).get(f"/t/{hd.slug}/tickets/{ticket['number']}").get_data(as_text=True)
    assert re.search(r'data-reply-to="[^"]+" aria-label="Reply to Ada Agent, [^"]+">Reply</a>', page)
    assert '<span id="ticket-title" dir="auto">' in page and page.count('class="msg-body" dir="auto"') >= 3
