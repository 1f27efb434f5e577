"""The events the job triggers send, and how a resumed task reads them back: one format, one module.

:class:`~airflow_provider_musicai.triggers.musicai.MusicAIJobTrigger` sends, for its one job::

    {"status": "success" | "error" | "timeout", "job_id": str, "job": dict | None,
     "message": str, "last_status": str | None}

``job`` is the final job document when the job reached a final status (SUCCEEDED, or FAILED with its
``error``), else None. :class:`~airflow_provider_musicai.triggers.musicai.MusicAIJobsTrigger` sends::

    {"status": "success" | "error" | "timeout", "job_ids": [str], "jobs": [dict],
     "failed": [str], "message": str}

``jobs`` holds the final documents seen so far, in ``job_ids`` order. Documents carry no signed URL
(see :func:`~airflow_provider_musicai.references.public_job_document`): Airflow logs trigger events
and stores them in its database. Tasks deferred by an earlier release resume with these same shapes.

Kept apart from the triggers so that operators and the sensor read events without importing them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_musicai.exceptions import MusicAIError, MusicAITimeoutError
from airflow_provider_musicai.jobs import JobStatus, raise_if_failed
from airflow_provider_musicai.redaction import printable


def failure_message(job: Mapping[str, Any]) -> str:
    """``"Job X FAILED: CODE (title): message"`` from a FAILED job document."""
    error = job.get("error")
    if not isinstance(error, dict):
        error = {}
    return printable(
        f"Music AI job {job.get('id')} FAILED: {error.get('code') or 'UNKNOWN'} "
        f"({error.get('title') or 'no title'}): {error.get('message') or 'no message'}"
    )


def job_event(
    status: str,
    job_id: str,
    message: str,
    job: dict[str, Any] | None = None,
    last_status: str | None = None,
) -> dict[str, Any]:
    """The payload of a one-job trigger's event."""
    return {"status": status, "job_id": job_id, "job": job, "message": message, "last_status": last_status}


def jobs_event(
    status: str, job_ids: list[str], finished: Mapping[str, dict[str, Any]], message: str
) -> dict[str, Any]:
    """The payload of a many-jobs trigger's event, from the final documents by job id."""
    return {
        "status": status,
        "job_ids": job_ids,
        "jobs": [finished[job_id] for job_id in job_ids if job_id in finished],
        "failed": [job_id for job_id, job in finished.items() if job.get("status") != JobStatus.SUCCEEDED],
        "message": message,
    }


def job_from_event(event: Mapping[str, Any] | None) -> dict[str, Any]:
    """The final job document of a one-job ``success`` event, or the error any other event stands for."""
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


def jobs_from_event(event: Mapping[str, Any] | None, *, fail_fast: bool) -> list[dict[str, Any]]:
    """The final documents an event reports, in job order (one for a one-job event).

    Raises :class:`MusicAITimeoutError` for a timeout, the first FAILED job's error with
    ``fail_fast``, and :class:`MusicAIError` when polling failed before every job was final. Without
    ``fail_fast``, FAILED documents are returned with the others (the caller decides).
    """
    if not isinstance(event, Mapping) or "job_ids" not in event:
        return [job_from_event(event)]
    ids = [str(job_id) for job_id in event.get("job_ids") or []]
    if event.get("status") == "timeout":
        raise MusicAITimeoutError(str(event.get("message")), job_id=", ".join(ids), last_status=None)
    by_id = {str(job.get("id")): dict(job) for job in event.get("jobs") or [] if isinstance(job, Mapping)}
    if fail_fast:
        for job in by_id.values():
            raise_if_failed(job)
    if event.get("status") != "success" and not all(job_id in by_id for job_id in ids):
        raise MusicAIError(str(event.get("message") or "Waiting for the Music AI jobs failed"))
    return [by_id[job_id] for job_id in ids]
