"""The admin pages' tests use the page fixtures of tests/ui (a help desk, signed-in clients, screenshots)."""

from tests.ui.conftest import artifacts, help_desk, keep, sign_in  # noqa: F401 - fixtures
