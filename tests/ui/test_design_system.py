"""The design system keeps its promises: readable contrast in light and dark, and nothing the CSP refuses.

Colours are read from app/static/app.css itself, so a change of palette is checked as it is made.
WCAG AA: 4.5:1 for text, 3:1 for focus rings and input borders (non-text contrast).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CSS = (ROOT / "app" / "static" / "app.css").read_text()
TEXT_PAIRS = [
    ("text", "bg"), ("text", "surface"), ("text", "surface-2"), ("text", "selected-bg"),
    ("text-muted", "bg"), ("text-muted", "surface"), ("text-muted", "surface-2"),
    ("link", "bg"), ("link", "surface"), ("accent-fg", "accent-bg"), ("accent-fg", "accent-hover"),
    ("nav-fg", "nav-bg"), ("nav-muted", "nav-bg"), ("danger-fg", "danger-bg"), ("danger-fg", "surface"),
    ("success-fg", "success-bg"), ("note-fg", "note-bg"), ("pending-fg", "surface"),
]
NON_TEXT_PAIRS = [("focus", "surface"), ("focus", "bg"), ("border-strong", "surface")]


def palettes() -> dict[str, dict[str, str]]:
    light = re.search(r"^:root \{(.*?)^\}", CSS, re.S | re.M).group(1)
    dark = re.search(r"prefers-color-scheme: dark\) \{\s*:root \{(.*?)\}", CSS, re.S).group(1)
    colours = lambda block: dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", block))  # noqa: E731
    base = colours(light)
    return {"light": base, "dark": {**base, **colours(dark)}}


def luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_and_badges_are_readable_in_both_schemes(scheme):
    colours = palettes()[scheme]
    badges = sorted({m for m in re.findall(r"--(badge-[\w]+)-fg", CSS)})
    pairs = TEXT_PAIRS + [(f"{b}-fg", f"{b}-bg") for b in badges]
    assert len(badges) >= 10  # five statuses, four priorities, roles
    low = {f"{fg} on {bg}": round(contrast(colours[fg], colours[bg]), 2) for fg, bg in pairs
           if contrast(colours[fg], colours[bg]) < 4.5}
    assert low == {}, f"below 4.5:1 in {scheme}"
    faint = {f"{fg} on {bg}": round(contrast(colours[fg], colours[bg]), 2) for fg, bg in NON_TEXT_PAIRS
             if contrast(colours[fg], colours[bg]) < 3}
    assert faint == {}, f"below 3:1 in {scheme}"


def test_every_status_and_priority_has_a_badge():
    from app.tickets.models import PRIORITIES, STATUSES

    for value in (*STATUSES, *PRIORITIES):
        assert f".badge-{value} {{" in CSS, value


def test_templates_hold_nothing_the_content_security_policy_refuses():
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        assert not re.search(r"\sstyle=", text), f"{path}: inline style"
        assert not re.search(r"\son[a-z]+=", text), f"{path}: inline event handler"
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert 'src="' in tag or 'type="application/json"' in tag, f"{path}: inline script {tag}"
        assert "//cdn" not in text and "https://" not in text, f"{path}: loads from another site"
