"""Keywords of assignment rules: whole words and phrases, found in one reading of the text.

A pattern per keyword (`w1\\s+w2...`) backtracked: 20 rules of 50 keywords of 50 words against a
64 KiB description took 9.5 s of a shared worker, and a substring search per keyword still took
seconds against 10,000 crafted keywords. Every keyword is now in one automaton, and the text is
read once per ticket; the cases below pin down what a match means (what re.IGNORECASE matched).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.assignment import matching
from app.assignment.matching import keywords_found
from app.assignment.services import MAX_RULES

MATCHES = [  # (keyword, text, found)
    ("printer", "My PRINTER is on fire", True), ("print", "My printer", False),
    ("credit card", "credit   card\nissue", True), ("credit card", "creditcard", False),
    ("credit card", "credit, card", False), ("wi-fi", "wi-fi down", True), ("wi-fi", "wi - fi", False),
    ("c++", "I use c++.", True), ("c++", "I use c++x", False), (".net", "asp.net", False),
    (".net", "x .net here", True), ("e-mail", "E-MAIL me", True), ("foo", "foo_bar", False),
    ("foo", "foo.bar", True), ("a.b", "a.b.c", True), ("(x)", "(x) y", True), ("refund!", "REFUND!", True),
    ("refund!", "refund!!", True), ("naïve café", "naïve  café", True), ("x_y", "xx_y", False),
    ("  refund  ", "a refund", True), ("\x01", "a \x01 b", True), ("a\x01", "a \x01", False),
    ("iade", "İADE talebi", True), ("istanbul", "İstanbul ofisi", True), ("ptal", "İPTAL istiyorum", False),
    ("ade", "İade", False), ("fix", "f\u0131x it", True), ("ß", "ss", False), ("strasse", "STRAßE", False),
    ("οδος", "ΟΔΟΣ", True), ("οδος", "η οδός", False), ("ǰ", "J̌", False), ("x", "x\u0345", True),
    ("k", "\u212a", True), ("\u03c3", "\u03c2", True), ("\u00b5g", "\u03bcg", True), ("\u03c6", "\u03d5", True),
    ("\u0432", "\u1c80", True), ("\u1e9b", "\u1e60", True),
]


@pytest.mark.parametrize(("keyword", "text", "found"), MATCHES)
def test_a_keyword_is_found_as_a_whole_word_or_phrase(keyword, text, found):
    ticket = SimpleNamespace(title=text, description="")
    assert (keyword in keywords_found(ticket, [{"keywords_any": [keyword, "unrelated words"]}])) is found


def test_every_keyword_of_every_rule_is_found_in_one_reading():
    rules = [{"keywords_any": ["a " * 47 + f"w{i} w{j} a" for j in range(50)]} for i in range(20)]
    ticket = SimpleNamespace(title="x", description="a " * 14800 + "w3 w7 a " + "a " * 47 + "w19 w49 a")
    assert keywords_found(ticket, rules) == {"a " * 47 + "w3 w7 a", "a " * 47 + "w19 w49 a"}


def test_a_ticket_is_read_once_for_all_its_rules(desk, monkeypatch):
    team = desk.team("Support", desk.agents(1))
    for n in range(5):
        desk.rule(team, name=f"r{n}", position=n, conditions={"keywords_any": [f"word{n}", "a " * 40 + "b"]})
    reads = []
    real = matching.Keywords.found_in
    monkeypatch.setattr(matching.Keywords, "found_in", lambda self, ticket: reads.append(ticket) or real(self, ticket))
    dry = desk.t.api.post("/api/v1/assignment-rules/dry-run",
                          json={"ticket": {"title": "x", "description": "a " * 32000 + "word4"}})
    assert dry.status_code == 200
    assert [r["matches"] for r in dry.get_json()["rules"]] == [False] * 4 + [True]
    assert len(reads) == 1


def test_an_organization_has_at_most_so_many_rules(desk, in_tenant):
    from app.assignment.models import AssignmentRule

    team = desk.team("Support", desk.agents(1))
    desk.rule(team, name="first")
    with in_tenant(desk.t) as session:
        template = session.query(AssignmentRule).one()
        for n in range(MAX_RULES - 1):
            session.add(AssignmentRule(name=f"r{n}", team_id=template.team_id, strategy=template.strategy,
                                       position=n, conditions={}, required_skills=[], enabled=True))
        session.commit()
    resp = desk.t.api.post("/api/v1/assignment-rules", json={"name": "one more", "team_id": team["id"],
                                                              "strategy": "round_robin"})
    assert resp.status_code == 409 and str(MAX_RULES) in resp.get_json()["message"]
    assert len(desk.t.api.get("/api/v1/assignment-rules", query_string={"limit": 200}).get_json()["items"]) == 200


def test_an_organizations_rules_hold_a_bounded_length_of_keywords(desk):
    """Every worker builds all of them into one automaton: 10,000 distinct long keywords took 3.6 s and 96 MB."""
    from app.assignment.services import MAX_KEYWORD_CHARACTERS

    team = desk.team("Support", desk.agents(1))
    keywords = [f"{n:03d}" + "k" * 96 for n in range(50)]  # 50 keywords of 99 characters: 4,950 a rule
    rules = [desk.rule(team, name=f"r{n}", conditions={"keywords_any": keywords}) for n in range(4)]
    small = desk.rule(team, name="small", conditions={"keywords_any": keywords[:2]})  # 19,998 in all
    assert 4 * 4950 + 2 * 99 <= MAX_KEYWORD_CHARACTERS < 4 * 4950 + 3 * 99
    refused = desk.t.api.post("/api/v1/assignment-rules", json={
        "name": "one more", "team_id": team["id"], "strategy": "round_robin", "conditions": {"keywords_any": ["xyz"]}})
    assert refused.status_code == 409 and "20,000 characters" in refused.get_json()["message"]
    grown = desk.t.api.patch(f"/api/v1/assignment-rules/{small['id']}",
                             json={"conditions": {"keywords_any": keywords[:3]}})
    assert grown.status_code == 409
    same = desk.t.api.patch(f"/api/v1/assignment-rules/{rules[0]['id']}",
                            json={"conditions": {"keywords_any": keywords[:10]}})
    assert same.status_code == 200  # a rule's own keywords are not counted twice
    assert desk.t.api.patch(f"/api/v1/assignment-rules/{small['id']}",
                            json={"conditions": {"keywords_any": keywords[:3]}}).status_code == 200


def _ticket(text: str) -> SimpleNamespace:
    return SimpleNamespace(title=text, description="", priority="normal", category=None, tags=[], team_id=None)


def test_a_rule_whose_keywords_are_all_blank_matches_nothing_not_everything():
    """Matching skips a blank keyword; a rule whose only keyword was " " took every ticket of the organization."""
    assert not matching.rule_matches({"keywords_any": [" "]}, _ticket("hello"))
    assert not matching.rule_matches({"keywords_any": ["\t", "   "]}, _ticket("printer on fire"))
    assert matching.rule_matches({"keywords_any": [" ", "printer"]}, _ticket("printer on fire"))
    assert matching.rule_matches({"keywords_any": []}, _ticket("hello"))  # no keyword condition at all


@pytest.mark.parametrize("blank", [" ", "\t", "    ", "\u3000", "\u200b", "\u00a0\u2028"])
def test_a_blank_keyword_is_refused(desk, blank):
    team = desk.team("Support", desk.agents(1))
    rule = {"name": "billing", "team_id": team["id"], "strategy": "round_robin",
            "conditions": {"keywords_any": ["refund", blank]}}
    refused = desk.t.api.post("/api/v1/assignment-rules", json=rule)
    assert refused.status_code == 422
    assert refused.get_json()["errors"] == {"conditions.keywords_any.1": ["A keyword must not be blank."]}
    kept = desk.rule(team, name="kept", conditions={"keywords_any": ["refund"]})
    changed = desk.t.api.patch(f"/api/v1/assignment-rules/{kept['id']}", json={"conditions": {"keywords_any": [blank]}})
    assert changed.status_code == 422, changed.get_json()
    assert desk.t.api.get(f"/api/v1/assignment-rules/{kept['id']}").get_json()["conditions"] == {
        "keywords_any": ["refund"]}


@pytest.mark.parametrize("category", [" ", "\u200b", "Invoice \u202efdp", "a" * 101, ""])
def test_a_category_no_ticket_could_have_is_refused_as_a_condition(desk, category):
    """A ticket's category must show something and hold no override: a rule's condition on any other text
    was saved and never matched."""
    team = desk.team("Support", desk.agents(1))
    rule = {"name": "billing", "team_id": team["id"], "strategy": "round_robin",
            "conditions": {"category": ["Billing", category]}}
    refused = desk.t.api.post("/api/v1/assignment-rules", json=rule)
    assert refused.status_code == 422 and set(refused.get_json()["errors"]) == {"conditions.category.1"}, (
        refused.get_json())
    assert desk.t.api.post("/api/v1/tickets", json={"title": "t", "category": category}).status_code == 422
    kept = desk.rule(team, name="kept", conditions={"category": ["Billing"]})
    changed = desk.t.api.patch(f"/api/v1/assignment-rules/{kept['id']}", json={"conditions": {"category": [category]}})
    assert changed.status_code == 422, changed.get_json()
    assert desk.t.api.get(f"/api/v1/assignment-rules/{kept['id']}").get_json()["conditions"] == {
        "category": ["Billing"]}
