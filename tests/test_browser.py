"""Headless Chromium drives the real app in gunicorn: a person signs up an organization and signs in."""

from __future__ import annotations

import secrets

from playwright.sync_api import expect


def test_a_new_organization_signs_up_and_its_admin_signs_in(live_server, page, screenshot):
    slug = f"b{secrets.token_hex(5)}"
    page.goto(f"{live_server.url}/signup")
    expect(page.get_by_role("heading", name="Create an organization")).to_be_visible()
    page.get_by_label("name").fill("Browser Org")
    page.get_by_label("slug").fill(slug)
    page.get_by_label("admin_email").fill(f"admin@{slug}.example.com")
    page.get_by_label("admin_password").fill("correct horse battery")
    page.get_by_role("button", name="Create").click()

    page.wait_for_url(f"**/t/{slug}/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("email").fill(f"admin@{slug}.example.com")
    page.get_by_label("password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Queues")).to_be_visible()
    expect(page.get_by_text("(admin)")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    shot = screenshot(page, "home")
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_phone_sees_the_signup_form_at_its_own_width(live_server, phone_page, screenshot):
    phone_page.goto(f"{live_server.url}/signup")
    assert phone_page.evaluate("screen.width") == 390
    expect(phone_page.get_by_label("admin_password")).to_be_visible()
    assert screenshot(phone_page, "signup").stat().st_size > 0
