"""Sockets opened together spread their periodic re-checks instead of running them in lockstep."""

from __future__ import annotations

from app.conversation.stream import first_resync_after


def test_sockets_opened_together_first_resync_at_different_points_of_the_interval():
    delays = [first_resync_after(30) for _ in range(50)]
    assert all(0 <= delay <= 30 for delay in delays)  # none waits longer than the interval
    assert len(set(delays)) > 25
