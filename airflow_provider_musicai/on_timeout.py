"""What happens to a job whose wait timed out: kept for the next try, or deleted (``on_timeout``).

A timed-out job is still running and billing. Keeping it is right when a retry follows (the retry
reattaches instead of paying for a new job); deleting it is right when none will, since nobody
waits for it any more. ``on_timeout`` chooses:

* ``"auto"`` (default): keep the job when Airflow will retry the task and the retry reattaches
  (``try_number <= max_tries`` and ``reattach``), delete it on the last try;
* ``"keep"``: always keep it (e.g. something else collects it);
* ``"delete"``: always delete it.

``MusicAIJobSensor`` takes the same setting with ``"keep"`` as its default (it waits on jobs that
others created); its ``"auto"`` deletes the jobs still running when its own ``timeout`` fires, which
Airflow never retries.

The decision is made in the worker, where every timeout surfaces on Airflow 2.11 and 3.x alike:
our own deadline (waiting on a worker, or the trigger's ``timeout`` event handed to
``execute_complete``), ``execution_timeout`` (``AirflowTaskTimeout`` raised inside ``execute``),
and Airflow's own trigger timeout (``resume_execution`` with ``next_method="__fail__"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ON_TIMEOUT_CHOICES = ("auto", "keep", "delete")


def validate_on_timeout(value: Any, owner: str) -> str:
    """``value`` if it is one of :data:`ON_TIMEOUT_CHOICES`, else a ``ValueError`` naming them."""
    if value not in ON_TIMEOUT_CHOICES:
        choices = ", ".join(repr(choice) for choice in ON_TIMEOUT_CHOICES)
        raise ValueError(f"{owner}: on_timeout must be one of {choices}, got {value!r}")
    return str(value)


@dataclass(frozen=True)
class TimeoutDecision:
    """Whether to delete the timed-out job, and the reason the task log gives."""

    delete: bool
    reason: str


def tries_of(ti: Any, retries: int) -> tuple[int, int]:
    """This try and the last try Airflow allows, of a task instance.

    The last try is ``max_tries + 1`` (which a clear raises), or the task's ``retries + 1`` for a
    task instance that does not say.
    """
    try_number = int(getattr(ti, "try_number", 1) or 1)
    max_tries = getattr(ti, "max_tries", None)
    if not isinstance(max_tries, int):
        max_tries = int(retries or 0)
    return try_number, max(max_tries + 1, try_number)


def decide(on_timeout: str, ti: Any, *, retries: int, reattach: bool, final: bool = False) -> TimeoutDecision:
    """Keep or delete a job whose task timed out on this try of ``ti``; ``final``: Airflow retries
    no timeout of this kind (a sensor's ``AirflowSensorTimeout``)."""
    if on_timeout == "keep":
        return TimeoutDecision(False, "on_timeout='keep'")
    if on_timeout == "delete":
        return TimeoutDecision(True, "timed out, on_timeout='delete'")
    try_number, last = tries_of(ti, retries)
    if final:
        return TimeoutDecision(
            True, f"timed out on try {try_number} of {last}, and a sensor timeout is not retried"
        )
    if try_number >= last:
        return TimeoutDecision(True, f"timed out on the last try ({try_number} of {last})")
    if not reattach:
        return TimeoutDecision(
            True,
            f"timed out on try {try_number} of {last}, and the next try creates its own job (reattach=False)",
        )
    return TimeoutDecision(False, f"try {try_number} of {last}, the next try reattaches")


def is_trigger_timeout(next_method: str, next_kwargs: Mapping[str, Any] | None) -> bool:
    """Whether Airflow resumes a deferred task only to fail it for its trigger timeout.

    Its error says ``"Trigger timeout"`` on Airflow 3 and ``"Trigger/execution timeout"`` on 2.11.
    """
    error = (next_kwargs or {}).get("error")
    return next_method == "__fail__" and "timeout" in str(getattr(error, "value", error)).lower()
