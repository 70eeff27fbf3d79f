"""`make run`'s antivirus: a clamd of its own where one is installed, and a loud "off" where not."""

from __future__ import annotations

import pytest

from app import runner
from app.media.clamd import Clamd


def test_where_clamd_is_installed_the_run_starts_it_and_says_its_signature_is_a_test(tmp_path, capsys):
    env: dict[str, str] = {}
    clamd = runner.start_antivirus(tmp_path, env)
    try:
        assert clamd is not None and env["CLAMD_SOCKET"] == clamd.socket_path
        assert Clamd(socket_path=env["CLAMD_SOCKET"]).ping()
        assert "TEST signature" in capsys.readouterr().out
    finally:
        clamd.stop()


def test_where_clamd_is_missing_the_run_says_antivirus_is_off(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner, "clamd_program", lambda: None)
    env: dict[str, str] = {}
    assert runner.start_antivirus(tmp_path, env) is None
    assert env["MEDIA_ANTIVIRUS"] == "off"
    assert "ANTIVIRUS IS OFF" in capsys.readouterr().err


@pytest.mark.parametrize("given", [{"MEDIA_ANTIVIRUS": "off"}, {"CLAMD_HOST": "clamd.internal"}])
def test_an_operators_choice_is_kept(tmp_path, given):
    env = dict(given)
    assert runner.start_antivirus(tmp_path, env) is None
    assert env == given
