"""Markdown is rendered and then sanitised on the server, the same for pages, REST and socket frames."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from app.markdown import TAGS, render
from tests.helpers import new_ticket, post_message


@pytest.mark.parametrize(("text", "html"), [
    ("**bold** and _it_", "<p><strong>bold</strong> and <em>it</em></p>"),
    ("line one\nline two", "<p>line one<br>\nline two</p>"),
    ("- a\n- b", "<ul>\n<li>a</li>\n<li>b</li>\n</ul>"),
    ("`<b>`", "<p><code>&lt;b&gt;</code></p>"),
    ("~~gone~~", "<p><s>gone</s></p>"),
    ("[docs](https://example.com/a?b=1)",
     '<p><a href="https://example.com/a?b=1" rel="noopener noreferrer nofollow ugc">docs</a></p>'),
    ("", ""),
])
def test_markdown_renders_the_usual_things(text, html):
    assert render(text) == html


@pytest.mark.parametrize("text", [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="https://x" onclick="alert(1)">x</a>',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD4=)",
    "[x](vbscript:msgbox(1))",
    "<iframe src=https://evil.example></iframe>",
    "<style>body{display:none}</style>",
    '<div style="position:fixed">x</div>',
    "![pixel](https://tracker.example/p.gif)",
    "<svg><script>alert(1)</script></svg>",
    '[x](https://x "t\\" onmouseover=\\"alert(1))',
    "<!-- comment --><b>x</b>",
])
def test_hostile_markdown_comes_out_as_harmless_text(text):
    tags = Tags()
    tags.feed(render(text))
    assert {tag for tag, _ in tags.seen} <= TAGS, text
    for tag, attributes in tags.seen:
        allowed = {"href", "title", "rel"} if tag == "a" else {"start"} if tag == "ol" else set()
        assert set(attributes) <= allowed, (text, tag, attributes)
        if tag == "a":
            assert attributes["href"].startswith(("https://", "http://", "mailto:")), text


class Tags(HTMLParser):
    """Collect every start tag and its attributes, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.seen.append((tag, dict(attrs)))

    def handle_comment(self, data):
        self.seen.append(("!--", {}))


def test_messages_carry_their_sanitised_html_over_rest(tenant):
    ticket = new_ticket(tenant.api)
    posted = post_message(tenant.api, ticket["id"], body="**hi** <script>alert(1)</script>").get_json()
    assert posted["body_html"] == "<p><strong>hi</strong> &lt;script&gt;alert(1)&lt;/script&gt;</p>"
    listed = tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]
    assert listed[0]["body_html"] == posted["body_html"]
    assert "body_html" in tenant.api.get("/api/v1/openapi.json").get_json()["components"]["schemas"]["Message"][
        "properties"]


def test_long_texts_render_without_the_cache():
    text = "word " * 2000
    assert render(text) == f"<p>{text.strip()}</p>"
