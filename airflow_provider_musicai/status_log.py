"""How a job's wait is logged: its status changes (:class:`StatusLog`, used by the hook's wait, the
sensor and the trigger alike) and its outcome (:func:`log_final_job`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from airflow_provider_musicai.jobs import KNOWN_STATUSES, JobStatus
from airflow_provider_musicai.redaction import printable, redact_url
from airflow_provider_musicai.references import is_url
from airflow_provider_musicai.timestamps import utc_stamp


class SupportsLog(Protocol):
    """The part of a logger used here: stdlib ``logging`` and Airflow 3's structlog loggers both fit."""

    def info(self, msg: str, /, *args: Any) -> Any: ...

    def warning(self, msg: str, /, *args: Any) -> Any: ...


class StatusLog:
    """Logs a job's status once per change, with the UTC time it was seen (and the seconds since
    ``started``, an epoch time, when given), and warns once about each status the provider does not
    know (it is treated as running). The hook's wait, the sensor and the trigger all log through it."""

    def __init__(self, job_id: str, logger: SupportsLog, *, started: float | None = None) -> None:
        self.job_id = job_id
        self.log = logger
        self.started = started
        self.last: str | None = None
        self._warned: set[str] = set()

    def observe(self, status: str) -> bool:
        """Record ``status``; True if it differs from the last one seen."""
        changed = status != self.last
        if changed:
            now = time.time()
            if self.started is None:
                self.log.info("Music AI job %s is %s (at %s)", self.job_id, printable(status), utc_stamp(now))
            else:
                self.log.info(
                    "Music AI job %s is %s (at %s, %.1fs after the wait began)",
                    self.job_id,
                    printable(status),
                    utc_stamp(now),
                    now - self.started,
                )
            self.last = status
        if status not in KNOWN_STATUSES and status not in self._warned:
            self._warned.add(status)
            self.log.warning(
                "Music AI job %s has an unknown status %r; treating it as running", self.job_id, status
            )
        return changed


def describe_result(job: Mapping[str, Any]) -> str:
    """``"vocals=https://host/path?<redacted>, bpm=120"``: a job's result safe for logs (result
    references, ``musicai-result://<job>/<key>``, hold no secret and are shown as they are)."""
    result = job.get("result")
    if not isinstance(result, Mapping) or not result:
        return "no result values"
    parts = []
    for key in sorted(result):
        value = result[key]
        if is_url(value):  # any case: HTTPS://... is a signed URL too
            shown = redact_url(value)
        else:
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        parts.append(f"{key}={shown}")
    return ", ".join(parts)


def log_final_job(log: SupportsLog, job: Mapping[str, Any]) -> None:
    """One line with the job's outcome and timestamps, one with its (redacted) result."""
    log.info(
        "Music AI job %s %s (created %s, started %s, completed %s)",
        job.get("id"),
        job.get("status"),
        job.get("createdAt") or "?",
        job.get("startedAt") or "?",
        job.get("completedAt") or "?",
    )
    if job.get("status") == JobStatus.SUCCEEDED:
        log.info("Music AI job %s result: %s", job.get("id"), describe_result(job))
