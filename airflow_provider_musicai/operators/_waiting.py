"""Helpers shared by the operators and the sensor: deadlines, trigger events, ids and log lines.

Nothing here imports the hook or an HTTP library at module import time, so DAG parsing stays
cheap.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_musicai.common import SupportsLog, redact_url
from airflow_provider_musicai.exceptions import MusicAIConfigurationError, MusicAIError, MusicAITimeoutError
from airflow_provider_musicai.jobs import JobStatus, raise_if_failed
from airflow_provider_musicai.references import is_url, public_job_document

#: What goes to XCom: the job document with result references instead of signed URLs.
public_job = public_job_document


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


def job_id_of(value: Any) -> str:
    """A job id from an id string or a job document (the CreateJob operator's return value)."""
    if isinstance(value, Mapping):
        value = value.get("id")
    if not isinstance(value, str) or not value.strip():
        raise MusicAIConfigurationError(
            f"Expected a Music AI job id or job document, got {type(value).__name__}: {value!r:.80}"
        )
    return value.strip()


def job_ids_of(value: Any) -> list[str | None]:
    """Flatten one id, a job document, or any (nested) collection of them; None means 'no job'."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return [None]  # "None": what Jinja renders for an XCom that was never pushed
    if isinstance(value, (str, Mapping)):
        return [job_id_of(value)]
    if isinstance(value, Iterable):
        # A sequence by index: iterating Airflow 3's lazy sequence of a mapped task's outputs reads
        # one item past the end, which makes Airflow log "[error] XCom not found".
        items = (value[i] for i in range(len(value))) if isinstance(value, Sequence) else value
        out: list[str | None] = []
        for item in items:
            out.extend(job_ids_of(item))
        return out
    return [job_id_of(value)]


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


def job_from_event(event: Mapping[str, Any] | None) -> dict[str, Any]:
    """The final job document of a MusicAIJobTrigger ``success`` event (already free of signed
    URLs, see :func:`airflow_provider_musicai.references.public_job_document`), or the error any
    other event stands for."""
    if not isinstance(event, Mapping):
        raise MusicAIError(f"Unexpected event from the Music AI trigger: {event!r:.200}")
    status = event.get("status")
    job = event.get("job")
    job_id = str(event.get("job_id"))
    message = str(event.get("message") or "")
    if status == "success" and isinstance(job, Mapping) and job.get("status") == JobStatus.SUCCEEDED:
        return dict(job)
    if isinstance(job, Mapping):
        raise_if_failed(job)
    if status == "timeout":
        raise MusicAITimeoutError(message, job_id=job_id, last_status=event.get("last_status"))
    raise MusicAIError(message or f"Waiting for Music AI job {job_id} failed")
