"""Signing out is never refused by the page rate limit: a person over their limit (or in an
organization over its limit) is still signed out at once, with their sessions and sockets.
"""

from __future__ import annotations

LIMIT = 3


def test_signing_out_is_never_refused_by_the_page_rate_limit(app, tenant, monkeypatch):
    person = tenant.user("requester", password="password123")
    ticket = tenant.key_for(person).post("/api/v1/tickets", json={"title": "Printer on fire"}).get_json()
    client = app.test_client()
    assert client.post(f"/t/{tenant.slug}/login",
                       data={"email": person["email"], "password": "password123"}).status_code == 302
    monkeypatch.setitem(app.config, "RATE_LIMIT_PER_MINUTE", LIMIT)
    codes = [client.post(f"/t/{tenant.slug}/tickets/{ticket['number']}/messages", data={"body": f"m{i}"}).status_code
             for i in range(2 * LIMIT + 2)]
    assert 429 in codes, codes  # the person is over their limit now

    out = client.post(f"/t/{tenant.slug}/logout")
    assert out.status_code == 302, f"sign-out answered {out.status_code}"
    assert "/login" in client.get(f"/t/{tenant.slug}/").headers.get("Location", ""), "still signed in"
