"""Cursors are signed as itsdangerous' URLSafeSerializer signs them, so either side reads the other's."""

from __future__ import annotations

import pytest
from itsdangerous import BadSignature, URLSafeSerializer

from app.pagination import _CursorSerializer

SALT = "cursor:tenant:ticket.created_at-datetime,ticket.id-uuid:"


@pytest.mark.parametrize("values", [
    ["2026-11-30T19:23:11.123456+00:00", "0b8e1c2a-4b0e-4c53-9d0a-2d4b3e6f7a81"],
    [3, "é🙂 desk"], [None, 5], ["x" * 500],  # the last one itsdangerous compresses
])
def test_cursors_signed_either_way_load_either_way(values):
    stock, ours = URLSafeSerializer("secret" * 8, salt=SALT), _CursorSerializer("secret" * 8, salt=SALT)
    assert ours.loads(stock.dumps(values)) == values
    assert stock.loads(ours.dumps(values)) == values


def test_a_cursor_of_another_salt_or_secret_or_altered_is_refused():
    signed = _CursorSerializer("secret" * 8, salt=SALT).dumps([1, "a"])
    for reader in (_CursorSerializer("secret" * 8, salt=SALT + "x"), _CursorSerializer("other" * 8, salt=SALT)):
        with pytest.raises(BadSignature):
            reader.loads(signed)
    payload, _, signature = signed.rpartition(".")
    with pytest.raises(BadSignature):
        _CursorSerializer("secret" * 8, salt=SALT).loads(payload + "." + signature[::-1])


def test_a_rotated_secret_still_reads_cursors_signed_with_the_old_one():
    old = _CursorSerializer("old" * 16, salt=SALT).dumps([7])
    assert _CursorSerializer(["old" * 16, "new" * 16], salt=SALT).loads(old) == [7]
