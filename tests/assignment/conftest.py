"""Fixtures for assignment tests: teams of agents and rules."""

from __future__ import annotations

import pytest

from tests.helpers import Desk


@pytest.fixture
def desk(tenant):
    """Return helpers to build a team of agents and rules in `tenant`."""
    return Desk(tenant)
