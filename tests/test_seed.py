"""The demo organization `make run` serves (`flask seed-demo`): its people, team, rule and tickets."""

from __future__ import annotations

import secrets

from app.seed import PEOPLE, TICKETS, seed_demo
from tests.helpers import ApiClient, wait_until


def test_the_demo_has_its_people_and_tickets_and_each_run_gives_a_new_key(app):
    slug = f"demo{secrets.token_hex(4)}"  # never `demo` itself: the test database may be one `make run` uses
    runner = app.test_cli_runner()
    try:
        with app.app_context():
            first, again = seed_demo(slug), seed_demo(slug)
        assert again.url_path == f"/t/{slug}/"
        api = ApiClient(app.test_client(), again.api_key)
        people = {p["email"]: p for p in api.get("/api/v1/users").get_json()["items"]}
        assert {(email, people[email]["role"]) for email, _, role, _, _ in PEOPLE} == {
            (email, role) for email, _, role, _, _ in PEOPLE}
        tickets = api.get("/api/v1/tickets").get_json()["items"]  # made once: the second run added none
        assert sorted((t["title"], t["priority"], t["category"], t["tags"]) for t in tickets) == sorted(
            (title, priority, category, sorted(tags)) for title, _, priority, category, tags in TICKETS)
        assert {t["requester_id"] for t in tickets} == {people["requester@demo.example"]["id"]}
        # the first run's key is revoked (the cache that saw it valid lets it by for a few seconds)
        wait_until(lambda: ApiClient(app.test_client(), first.api_key).get("/api/v1/tickets").status_code == 401,
                   "the first run's key to be refused")
    finally:
        dropped = runner.invoke(args=["tenants", "drop", slug, "--yes"])
        assert dropped.exit_code == 0, dropped.output
