"""Sockets opened together spread their periodic re-checks instead of running them in lockstep."""

from __future__ import annotations

from app.conversation.stream import first_resync_after, told_state


def test_sockets_opened_together_first_resync_at_different_points_of_the_interval():
    delays = [first_resync_after(30) for _ in range(50)]
    assert all(0 <= delay <= 30 for delay in delays)  # none waits longer than the interval
    assert len(set(delays)) > 25


def test_an_edit_told_in_another_time_zone_is_the_same_edit():
    """A process whose session keeps another time zone writes the edit time with another offset."""
    utc = {"type": "message.updated", "message": {"id": "m1", "edited_at": "2026-11-29T10:00:00.5+00:00"}}
    kolkata = {"type": "message.updated", "message": {"id": "m1", "edited_at": "2026-11-29T15:30:00.5+05:30"}}
    later = {"type": "message.updated", "message": {"id": "m1", "edited_at": "2026-11-29T10:00:01+00:00"}}
    assert told_state(utc) == told_state(kolkata) != told_state(later)
    assert told_state({"type": "message.deleted", "message": {"id": "m1"}}) != told_state(utc)
