"""When a wait must stop: the deadline an operator or sensor hands its trigger, and Airflow's own
trigger timeout set a little after it (a safety net for when no triggerer runs)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

#: Seconds kept between our own deadline and the task's ``execution_timeout``, so the wait ends
#: with a clear MusicAITimeoutError (and ``on_timeout`` settles the job) rather than with Airflow
#: killing the task.
EXECUTION_TIMEOUT_MARGIN = 5.0

#: Extra seconds given to Airflow's own trigger timeout beyond our deadline: the trigger
#: reports the timeout itself; Airflow's timeout only fires if no triggerer is running.
TRIGGER_TIMEOUT_GRACE = 60.0


def as_seconds(value: float | timedelta | None) -> float | None:
    """Seconds from a number or a timedelta; None stays None."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


def wait_deadline(
    *, timeout: float | None, execution_timeout: timedelta | None, task_start: datetime | None
) -> float | None:
    """The epoch time at which waiting must stop: ``timeout`` from now, or before the task's
    ``execution_timeout`` runs out (counted from the task's start), whichever comes first.

    Airflow 3 restarts ``execution_timeout`` after a deferral, so passing this absolute deadline
    to the trigger is what keeps the task's timeout whole across deferral.
    """
    now = time.time()
    candidates: list[float] = []
    if timeout is not None:
        candidates.append(now + timeout)
    if execution_timeout is not None:
        total = execution_timeout.total_seconds()
        start = task_start.timestamp() if task_start is not None else now
        margin = min(EXECUTION_TIMEOUT_MARGIN, total * 0.1)
        candidates.append(start + total - margin)
    return min(candidates) if candidates else None


def defer_timeout(deadline: float | None) -> timedelta | None:
    """Airflow's trigger timeout for a deadline: a safety net a little after it."""
    if deadline is None:
        return None
    return timedelta(seconds=max(0.0, deadline - time.time()) + TRIGGER_TIMEOUT_GRACE)
