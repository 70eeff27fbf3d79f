"""Markdown is rendered and then sanitised on the server, the same for pages, REST and socket frames."""

from __future__ import annotations

from html import escape
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa

from app import markdown
from app.conversation.models import Message
from app.markdown import TAGS, render
from tests.helpers import new_ticket, post_message, upload_file


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


def test_every_text_is_rendered_once_per_process_within_the_cache_s_bytes(monkeypatch):
    """Descriptions over 4 KiB were rendered on every view of their ticket (a hostile one: 0.1 s each)."""
    rendered: list[str] = []
    real = markdown._render
    monkeypatch.setattr(markdown, "_render", lambda text: rendered.append(text) or real(text))
    monkeypatch.setattr(markdown, "_rendered", markdown._Rendered())
    long, other = "word " * 6000 + "*once*", "other " * 6000
    assert render(long) == render(long) == f"<p>{'word ' * 6000}<em>once</em></p>"
    assert rendered == [long]
    monkeypatch.setattr(markdown, "CACHE_BYTES", markdown._size(render(long)) + 10)  # room for one of the two
    render(other)  # the older one goes
    render(long)
    assert rendered == [long, other, long]


def _stored(in_tenant, tenant, message_id):
    with in_tenant(tenant) as session:
        return session.execute(sa.select(Message.body, Message.body_html).where(Message.id == message_id)).one()


def test_a_message_is_rendered_once_when_written_and_served_as_stored(tenant, in_tenant, monkeypatch):
    """Reads never render: a page or list of 64 KiB markup-dense messages would render them all, each time."""
    ticket = new_ticket(tenant.api)
    dense = "- [x](https://example.com) *y*\n" * 2000
    posted = post_message(tenant.api, ticket["id"], body=dense).get_json()
    upload = upload_file(tenant.api, ticket["id"], b"hello", "note.txt", "text/plain").get_json()
    with_file = post_message(tenant.api, ticket["id"], body="**see** file", attachment_ids=[upload["id"]]).get_json()
    for message in (posted, with_file):
        body, html = _stored(in_tenant, tenant, message["id"])
        assert html == message["body_html"] == render(body)

    monkeypatch.setattr(markdown, "_render", lambda text: pytest.fail("rendered on read"))
    listed = tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]
    assert [m["body_html"] for m in listed] == [posted["body_html"], with_file["body_html"]]
    monkeypatch.undo()

    base = f"/api/v1/tickets/{ticket['id']}/messages/{posted['id']}"
    edited = tenant.api.patch(base, json={"body": "_now_ short"}).get_json()
    assert edited["body_html"] == "<p><em>now</em> short</p>" == _stored(in_tenant, tenant, posted["id"])[1]
    assert tenant.api.delete(base).status_code == 204
    assert _stored(in_tenant, tenant, posted["id"]) == ("", "")


def test_a_message_written_before_html_was_kept_is_rendered_when_read(tenant, in_tenant):
    ticket = new_ticket(tenant.api)
    posted = post_message(tenant.api, ticket["id"], body="**old** one").get_json()
    with in_tenant(tenant) as session:
        session.execute(sa.update(Message).where(Message.id == posted["id"]).values(body_html=None))
        session.commit()
    listed = tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]
    assert listed[0]["body_html"] == "<p><strong>old</strong> one</p>"


def test_markup_dense_texts_render_in_bounded_time_as_written():
    """Paragraphs past the inline budget stay as written (escaped); blocks and code still render."""
    dense = "[" * 60000
    assert render(dense) == f"<p>{dense}</p>"
    over = "[" * markdown.INLINE_MARKUP_BUDGET + " **kept**\nas typed"
    assert render(over) == f"<p>{'[' * markdown.INLINE_MARKUP_BUDGET} **kept**<br>\nas typed</p>"
    under = "[" * 100 + " **bold**"
    assert render(under) == f"<p>{'[' * 100} <strong>bold</strong></p>"
    # paragraphs are parsed in order while the budget lasts; only those past it stay as written
    assert render(f"Checked the **fuser**:\n\n{over}\n\n*later*") == (
        f"<p>Checked the <strong>fuser</strong>:</p>\n<p>{'[' * markdown.INLINE_MARKUP_BUDGET} **kept**<br>\n"
        "as typed</p>\n<p><em>later</em></p>")
    assert render("# Title\n\n" + "<b>" * 2000 + "\n\n```\ncode\n```") == (
        "<h1>Title</h1>\n<p>" + "&lt;b&gt;" * 2000 + "</p>\n<pre><code>code\n</code></pre>")
    assert render("**a** [b](https://example.com)") == (
        '<p><strong>a</strong> <a href="https://example.com" rel="noopener noreferrer nofollow ugc">b</a></p>')


def test_lines_past_the_markdown_budget_stay_as_written():
    """Only the first MARKDOWN_LINES lines are parsed: a 64 KiB list once took 0.8 s to render."""
    items = "- item\n" * (markdown.MARKDOWN_LINES // 2)  # a line in a list costs 2
    html = render(items + "- <b>kept</b> & **as typed**\r\n\r\n  \nnext\rline\n\n\n")
    assert html.count("<li>item</li>") == markdown.MARKDOWN_LINES // 2
    assert html.endswith("</ul>\n<p>- &lt;b&gt;kept&lt;/b&gt; &amp; **as typed**</p>\n<p>next<br>\nline</p>")
    # every spelling of a line ending counts, as markdown-it reads them
    assert render("a\r" * markdown.MARKDOWN_LINES + "*b*").endswith("<p>*b*</p>")
    assert render("a\r\n" * (markdown.MARKDOWN_LINES - 1) + "*b*").endswith("<em>b</em></p>")


def test_a_code_block_longer_than_the_budget_goes_on_to_its_closing_fence():
    log = "".join(f"line {i} <ok>\n" for i in range(markdown.MARKDOWN_LINES + 5))
    code = log.replace("<", "&lt;").replace(">", "&gt;")
    assert render(f"~~~~ text\n{log}~~~~\n**after**\n\n- [ ] x") == (
        f"<pre><code>{code}</code></pre>\n<p>**after**</p>\n<p>- [ ] x</p>")
    assert render(f"```\n{log}") == f"<pre><code>{code}</code></pre>"  # never closed
    # a shorter fence, or one of the other character, does not close it
    assert render(f"````\n{log}```\n~~~~\n````").endswith("line 1004 &lt;ok&gt;\n```\n~~~~\n</code></pre>")
    # a fence opened on the last line parsed, or closed on it, is handled as such
    before = "a\n" * (markdown.MARKDOWN_LINES - 1)
    assert render(f"{before}```\nx <y>\n```\n*z*").endswith("<pre><code>x &lt;y&gt;\n</code></pre>\n<p>*z*</p>")
    assert render(f"{before[2:]}```\n```\n*z*").endswith("a</p>\n<pre><code></code></pre>\n<p>*z*</p>")
    # a fence closed earlier, then lines that make no block up to the cut, is not reopened
    for filler in ("\n", "   \n", "[r]: /u\n"):
        html = render("```\ncode\n```\n" + filler * (markdown.MARKDOWN_LINES - 3) + "after the cut *prose*")
        assert html.endswith("<pre><code>code\n</code></pre>\n<p>after the cut *prose*</p>"), filler
    # a blank line just before the cut, inside the fence, stays in it
    for blank in ("", "    ", "\t"):
        code = "\n".join(f"line {i}" if i % 3 else blank for i in range(1, 1200))
        html = render(f"```\n{code}\n```\nafter")
        assert html.count("<pre>") == 1 and html.endswith("line 1199\n</code></pre>\n<p>after</p>"), repr(blank)
    # an indented fence's lines lose its indent past the cut too, as they do before it
    indented = render("  ```\n" + "  line\n" * (markdown.MARKDOWN_LINES + 2) + "  ```\n")
    assert "  line" not in indented and indented.count("line\n") == markdown.MARKDOWN_LINES + 2


@pytest.mark.parametrize("unit", ["- a\n", "1. a\n", "> a\n", "# a\n", "|a|\n", "a\n\n", "[a]: b\n", "a\n=\n", "a\n"])
def test_a_long_text_of_short_blocks_is_markdown_up_to_the_budget_and_as_written_after(unit):
    lines = (unit * (64 * 1024 // len(unit))).split("\n")
    parsed = markdown._lines_within_budget(lines)  # what it charges: the test below
    head, tail = "\n".join(lines[:parsed]), "\n".join(lines[parsed:])
    as_written = "\n".join("<p>{}</p>".format("<br>\n".join(escape(p, quote=False).split("\n")))
                           for p in tail.strip("\n").split("\n\n"))
    assert render(head + "\n" + tail) == "\n".join(filter(None, [render(head), as_written]))


def test_tables_hold_at_most_the_cell_budget_and_the_rest_stays_as_written():
    """A wide header over short rows was filled out to 65,000 empty cells: 1 s for 20 KB of text."""
    wide = "|a" * 5000 + "|\n" + "|-" * 5000 + "|\n" + "x\n" * 20
    assert "<table>" not in render(wide) and render(wide).startswith("<p>|a|a|a")
    budget = markdown.TABLE_CELLS
    rows = budget // 4 - 1  # body rows of a four-column table that fill the budget with its header
    head = "|a|b|c|d|\n|-|-|-|-|\n"
    html = render("text\n" + head + "|1|2|3|4|\n" * (rows + 2))
    assert html.startswith("<p>text</p>\n<table>")  # a table still interrupts a paragraph
    assert html.count("<td>1</td>") == rows and html.endswith("</table>\n<p>|1|2|3|4|<br>\n|1|2|3|4|</p>")
    # the budget is the text's, shared by its tables in order
    small = head + "|1|2|3|4|\n\n"
    assert render(small * 3).count("<table>") == 3
    assert render(head + "|1|2|3|4|\n" * rows + "\n" + small).count("<table>") == 1


@pytest.mark.parametrize(("text", "parsed"), [
    ("a\n" * 1200, 1000),
    ("- a\n" * 1200, 500),
    ("> - a\n" * 1200, 316),  # 3 a line; the quote's opening more for the lines and characters it rescans
    (("- " * 8 + "a\n") * 1200, 111),  # each line opens eight lists: 170 µs where a plain one takes 12
    ("> " * 9 + "a\n" + "lazy\n" * 1200, 95),  # lines without markers go on in the quotes above
    ("> " * 9 + "a\n\n" + "out\n" * 1200, 982),  # 10 + 10 (the blank line is still in them), then 1 a line
    ("> " * 9 + "a\n\n" + "  indented\n" * 1200, 100),  # an indented one may still be in them
    ("> ***\na\n" * 600, 44),  # each quote reopens and rescans the rest: charged for its run
    ("> quoted\n" * 1200, 469),  # one long quote opens once, then 2 a line
])
def test_the_line_budget_charges_a_line_for_each_list_and_quote_it_is_in(text, parsed):
    """Nested lists took 0.2 s for 64 KiB within the first 1,000 lines: their cost grows with depth."""
    assert markdown._lines_within_budget(text.split("\n")) == parsed


@pytest.mark.parametrize("text", [
    "> ***\n" + ("_" + " " * 600 + "x\n" + "> ***\n") * 6000,  # long lazy lines: read character by character
    ("> ***\n\x0c\n" + "_" + " " * 300 + "x\n") * 6000,  # a form feed is no blank line to markdown-it
    "10. x\n" + "    > ***\n    a\n" * 6000,  # quotes indented in a list item
    "- x\n" + "\t> ***\n\ta\n" * 6000,
    "> > ***\n> a\n" * 6000,  # a quote reopened inside one that goes on
])
def test_quotes_that_reopen_are_charged_however_they_are_written(text):
    """Each of these took 0.1 to 0.8 s for 64 KiB while parsing fewer lines than the budget allows."""
    lines = text[:64 * 1024].split("\n")
    assert markdown._lines_within_budget(lines) < 200


def test_the_render_cache_counts_every_entry_even_an_empty_one(monkeypatch):
    """Texts rendering to nothing (a link definition) were counted as 0 bytes: their number had no bound."""
    monkeypatch.setattr(markdown, "_rendered", markdown._Rendered())
    monkeypatch.setattr(markdown, "CACHE_BYTES", 100 * markdown.ENTRY_BYTES)
    for i in range(1000):
        assert render(f"[{i}]: /") == ""
    assert len(markdown._rendered._html) == 100

