"""A dashboard period may end on the last day a date can have: the chart's column links stop there."""

from __future__ import annotations

import re
from datetime import date

import pytest

from app.admin.charts import bucket_days


@pytest.mark.parametrize("query", ["to=9999-12-31", "from=9999-12-01&to=9999-12-31",
                                   "from=9900-01-01&to=9999-12-31",
                                   "from=9990-01-01&to=9999-12-30"])  # monthly buckets: December 9999 has no next month
def test_a_period_ending_on_the_last_possible_day_is_a_page(help_desk, sign_in, query):
    admin = sign_in(help_desk.admin)
    response = admin.get(f"/t/{help_desk.slug}/admin?{query}")
    assert response.status_code == 200
    links = re.findall(r'href="([^"]*created_after=9999-12-[^"]*)"', response.get_data(as_text=True))
    assert links, "the last bucket's column links to its tickets"
    if query.endswith("9999-12-31"):  # the last column's tickets are those created on or after its first day
        assert "created_before" not in links[-1]


def test_a_period_longer_than_a_century_is_refused_beside_its_field(help_desk, sign_in):
    """0001-01-01 to 9999-12-31 drew 120,000 monthly columns: 8 s and 66 MB of HTML a view."""
    admin = sign_in(help_desk.admin)
    response = admin.get(f"/t/{help_desk.slug}/admin?from=0001-01-01&to=9999-12-31")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "A period spans at most 100 years." in page and len(page) < 200_000


@pytest.mark.parametrize(("day", "bucket", "last", "expected"), [
    (date(2026, 11, 2), "week", date(2026, 12, 31), (date(2026, 11, 8), date(2026, 11, 9))),
    (date(2026, 11, 26), "week", date(2026, 11, 28), (date(2026, 11, 28), date(2026, 11, 29))),
    (date(2024, 2, 1), "month", date(2024, 12, 31), (date(2024, 2, 29), date(2024, 3, 1))),
    (date(2026, 11, 28), "day", date(2026, 11, 30), (date(2026, 11, 28), date(2026, 11, 29))),
    (date(9999, 12, 27), "week", date.max, (date.max, None)),
    (date(9999, 12, 1), "month", date.max, (date.max, None)),
    (date.max, "day", date.max, (date.max, None)),
])
def test_a_bucket_ends_on_its_last_day_or_the_period_s(day, bucket, last, expected):
    assert bucket_days(day, bucket, last) == expected
