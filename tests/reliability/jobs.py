"""Jobs a test enqueues for a real `flask worker` process (importable there: it runs from the repository root)."""

from __future__ import annotations

from pathlib import Path

from rq import get_current_job


def shut_redis_down() -> None:
    """Stop the Redis server this job came from, so the worker meets Redis gone as it finishes the job."""
    get_current_job().connection.shutdown(nosave=True)


def touch(path: str) -> None:
    """Leave a mark that a job ran."""
    Path(path).touch()
