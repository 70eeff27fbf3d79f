"""Numbers have one spelling, as ids do (test_id_spelling.py): a ticket number in a path and a
whole number in a query string are ASCII digits only.

Werkzeug's `int` converter matches any Unicode digit (`\\d+`) and `int()` reads them, so the
fullwidth or Arabic-Indic spelling of 1 fetched ticket 1; `int()` also read `limit=5_0` as 50.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.helpers import new_ticket


@pytest.mark.parametrize("spelling", ["\uff11", "\u0661", "\u09e7", "\U0001d7cf"])
def test_a_ticket_number_in_other_digits_is_not_the_ticket(tenant, spelling):
    ticket = new_ticket(tenant.api, "Printer on fire")
    assert ticket["number"] == 1
    resp = tenant.api.get(f"/api/v1/tickets/by-number/{quote(spelling)}")
    assert resp.status_code in (404, 422), (spelling, resp.status_code, resp.get_json())


@pytest.mark.parametrize("value", ["\uff15", "5_0", "+5", " 5", "5\n", "0x5", "5.0", "9" * 30])
@pytest.mark.parametrize("path", ["/api/v1/tickets?limit=", "/api/v1/users?limit=",
                                  "/api/v1/tickets/{id}/messages?after_seq="])
def test_numbers_in_query_strings_in_other_spellings_are_refused(tenant, path, value):
    ticket = new_ticket(tenant.api, "Printer on fire")
    resp = tenant.api.get(path.format(id=ticket["id"]) + quote(value))
    assert resp.status_code == 422, (path, value, resp.status_code)
    assert resp.get_json()["errors"]


def test_plain_numbers_still_work(tenant):
    ticket = new_ticket(tenant.api, "Printer on fire")
    assert tenant.api.get("/api/v1/tickets/by-number/1").get_json()["id"] == ticket["id"]
    assert tenant.api.get("/api/v1/tickets?limit=5").status_code == 200
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages?after_seq=0").status_code == 200
