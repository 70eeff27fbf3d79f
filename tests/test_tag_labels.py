"""Tags and skills are labels a comma-separated text box can hold: no comma, no control character,
no edge space. The pages show and save them that way (the ticket panel, a person's skills, a
rule's conditions); a label they could not show back would be split or changed by the next save."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import new_ticket

ROOT = Path(__file__).resolve().parents[1]

BAD = ["a,b", " leading", "trailing ", "line\nbreak", "tab\there", "\u00a0no-break space", "nul\u0000",
       "next line\u0085", "\u2028separator", "\ufeffbom", "\u202egnp.exe", "x\u202d", "\u200b", "\u200b\u2066\u2069"]


def _cases(tenant) -> list[tuple[str, str, dict, str]]:
    """(method, path, body with a marker where the label goes, the field the refusal names)."""
    ticket = new_ticket(tenant.api, "Printer on fire", tags=["hardware"])
    agent = tenant.user("agent")
    team = tenant.api.post("/api/v1/teams", json={"name": "Desk"}).get_json()
    rule = tenant.api.post("/api/v1/assignment-rules", json={"name": "r", "team_id": team["id"],
                                                             "strategy": "round_robin"}).get_json()
    return [
        ("post", "/api/v1/tickets", {"title": "t", "description": "d", "priority": "low", "tags": ["MARK"]}, "tags"),
        ("patch", f"/api/v1/tickets/{ticket['id']}", {"tags": ["ok", "MARK"]}, "tags"),
        ("post", "/api/v1/users", {"email": "new@example.com", "name": "New", "role": "agent",
                                   "password": "long password", "skills": ["MARK"]}, "skills"),
        ("patch", f"/api/v1/users/{agent['id']}", {"skills": ["MARK"]}, "skills"),
        ("post", "/api/v1/assignment-rules", {"name": "r2", "team_id": team["id"], "strategy": "skills",
                                              "required_skills": ["MARK"]}, "required_skills"),
        ("patch", f"/api/v1/assignment-rules/{rule['id']}", {"conditions": {"tags_any": ["MARK"]}}, "conditions"),
    ]


def _with(body, label: str):
    if isinstance(body, dict):
        return {k: _with(v, label) for k, v in body.items()}
    if isinstance(body, list):
        return [_with(v, label) for v in body]
    return label if body == "MARK" else body


def test_a_label_a_text_box_could_not_hold_is_refused_and_changes_nothing(tenant):
    cases = _cases(tenant)
    every = ["/api/v1/tickets", "/api/v1/users", "/api/v1/assignment-rules"]
    before = [tenant.api.get(path).get_json()["items"] for path in every]
    for method, path, body, field in cases:
        for label in BAD:
            resp = getattr(tenant.api, method)(path, json=_with(body, label))
            assert resp.status_code == 422, (path, label, resp.get_json())
            named = [k for k in resp.get_json()["errors"] if k.split(".")[0] == field]
            assert named, (path, label, resp.get_json())
    assert [tenant.api.get(path).get_json()["items"] for path in every] == before


@pytest.mark.parametrize("label", [
    "two words", "ü-é_1/2", "C++", "日本語", "नमस्ते", "\u2764\ufe0f", "\U0001f469\u200d\U0001f4bb",
    "\u2067\u05e9\u05dc\u05d5\u05dd\u2069 world", "\u05e9\u05dc\u05d5\u05dd\u200f"])
def test_labels_with_inner_spaces_and_any_script_are_kept_as_given(tenant, label):
    ticket = new_ticket(tenant.api, "Printer on fire", tags=[label])
    assert ticket["tags"] == [label]
    agent = tenant.user("agent")
    resp = tenant.api.patch(f"/api/v1/users/{agent['id']}", json={"skills": [label]})
    assert resp.status_code == 200 and resp.get_json()["skills"] == [label]


def test_a_long_label_or_name_is_refused_in_one_reading():
    """The document's label and name patterns backtrack on a long text, and every validator runs even after
    the length check refused it: a tag of 48,000 characters took 15 s of a worker, holding the GIL. The
    server checks the same rules one search at a time. In a process of its own, which a timeout can stop
    (a hang guard, not a timing test)."""
    code = (
        "from marshmallow import ValidationError\n"
        "from app.schemas import display_name, tag_list\n"
        "for field, value in ((tag_list(), ['a' * 1_000_000 + ',']), (display_name(), 'a ' * 500_000 + '\\u202e')):\n"
        "    try:\n"
        "        field.deserialize(value)\n"
        "    except ValidationError:\n"
        "        print('refused')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["refused", "refused"], done.stderr
