"""Job statuses, job ids as tasks pass them, metadata validation and the FAILED-job check shared by
hook, operators, sensor and triggers."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_provider_musicai.exceptions import MusicAIConfigurationError, MusicAIJobFailedError


class JobStatus:
    """The statuses the API documents. Anything else is treated as still running."""

    QUEUED = "QUEUED"
    STARTED = "STARTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


TERMINAL_STATUSES: frozenset[str] = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED})
ACTIVE_STATUSES: frozenset[str] = frozenset({JobStatus.QUEUED, JobStatus.STARTED})
KNOWN_STATUSES: frozenset[str] = TERMINAL_STATUSES | ACTIVE_STATUSES

#: Metadata key under which the hook stores a client-generated key, so that a job whose creation
#: response was lost (or whose task was retried) can be found again instead of created twice.
IDEMPOTENCY_METADATA_KEY = "airflowIdempotencyKey"

MetadataValue = str | int | float | bool


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


def validate_metadata(metadata: Mapping[str, Any] | None) -> dict[str, MetadataValue]:
    """Return a copy of ``metadata`` or raise naming the first key whose value the API refuses.

    The API accepts only flat key/value pairs whose values are strings, numbers or booleans.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise MusicAIConfigurationError(
            f"metadata must be a mapping of str to str/int/float/bool, got {type(metadata).__name__}"
        )
    clean: dict[str, MetadataValue] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise MusicAIConfigurationError(f"metadata keys must be non-empty strings, got {key!r}")
        if not isinstance(value, (str, int, float, bool)):
            raise MusicAIConfigurationError(
                f"metadata[{key!r}] must be a str, int, float or bool, got {type(value).__name__} "
                "(nested objects, lists and null are not accepted by the Music AI API)"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise MusicAIConfigurationError(f"metadata[{key!r}] must be a finite number, got {value!r}")
        clean[key] = value
    return clean


def workflow_slug(job: Mapping[str, Any]) -> str | None:
    """The slug in a job document's ``workflow``, or None when it carries none.

    Today's API sends the slug (``"workflow": "music-ai/stems-vocals-accompaniment"``); older
    reference pages show ``{"id": ..., "name": ...}`` instead, which names no slug.
    """
    value = job.get("workflow")
    return value if isinstance(value, str) and value else None


def is_active(job: Mapping[str, Any]) -> bool:
    """Whether ``job``'s own status is QUEUED or STARTED.

    A listing asked for the active jobs is not trusted to hold only active ones (a cache, a proxy
    or a server bug may ignore the filter): a listed job that is finished is confirmed and reported
    as finished, never kept waiting on.
    """
    return job.get("status") in ACTIVE_STATUSES


def listed_as_asked(
    job: Mapping[str, Any], *, workflow: str | None = None, batch_name: str | None = None
) -> bool:
    """Whether a listed ``job``'s own fields match the ``workflow`` / ``batch_name`` filters the
    listing was asked with (None: not asked).

    The job's own ``batchName`` and workflow slug decide, not the query: a listing that ignores a
    filter must not hand a caller another batch's or workflow's job. A document that names its
    workflow by the older ``{"id", "name"}`` form carries no slug to compare, so the filter is all
    there is and it is kept.
    """
    if batch_name is not None and job.get("batchName") != batch_name:
        return False
    slug = workflow_slug(job)
    return workflow is None or slug is None or slug == workflow


def raise_if_failed(job: Mapping[str, Any]) -> None:
    """Raise :class:`MusicAIJobFailedError` with the API's code, title and message if ``job`` FAILED."""
    if job.get("status") != JobStatus.FAILED:
        return
    error = job.get("error")
    error = error if isinstance(error, Mapping) else {}
    raise MusicAIJobFailedError(
        job_id=str(job.get("id", "?")),
        code=_as_text_or_none(error.get("code")),
        title=_as_text_or_none(error.get("title")),
        message=_as_text_or_none(error.get("message")),
    )


def _as_text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
