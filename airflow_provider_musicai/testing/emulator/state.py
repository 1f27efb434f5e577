"""Emulator state: runtime config, applications (API keys) and jobs with a clock-derived life cycle.

A job is QUEUED until the runner admits it (``queued_seconds`` after creation, later if the application
already runs ``max_concurrent_jobs`` jobs), then STARTED until ``processing_seconds`` have passed *and* the
background processing has produced an outcome, then SUCCEEDED or FAILED. Timings are snapshot when the job
is created; times come from the emulator's :class:`~.clock.Clock`.
"""

from __future__ import annotations

import itertools
import math
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from .clock import Clock

JOB_STATUSES = ("QUEUED", "STARTED", "SUCCEEDED", "FAILED")
LIST_SHAPES = ("array", "object")
VALUE_TYPES = ("native", "string")
WORKFLOW_SHAPES = ("slug", "object")
JOB_LIST_ORDERS = ("newest_first", "oldest_first")
_CHOICES = {
    "job_list_order": JOB_LIST_ORDERS,
    "list_shape": LIST_SHAPES,
    "result_value_types": VALUE_TYPES,
    "workflow_shape": WORKFLOW_SHAPES,
    "copy_results_unknown_outputs": ("reject", "ignore"),
}
_COUNTS = {"max_concurrent_jobs": 0, "max_page_size": 1}
_NON_NEGATIVE = ("queued_seconds", "processing_seconds", "input_timeout_seconds")
DEFAULT_API_KEYS = {"test-api-key": "Default Application", "other-api-key": "Other Application"}


@dataclass
class EmulatorConfig:
    """Settings changeable at run time (``POST /__emulator__/config``)."""

    queued_seconds: float = 0.5
    processing_seconds: float = 1.0
    list_shape: str = "array"
    upload_url_ttl_seconds: float = 3600.0
    download_url_ttl_seconds: float = 86400.0
    result_url_ttl_seconds: float = 7 * 86400.0
    input_timeout_seconds: float = 5.0
    #: Jobs one application runs at once (0: no limit); excess jobs stay QUEUED until a slot frees.
    max_concurrent_jobs: int = 0
    #: Largest page ``GET /job`` and ``GET /workflow`` serve: a larger ``size`` is silently clamped.
    max_page_size: int = 100
    #: ``"native"``: value outputs keep their declared JSON type; ``"string"``: every value is a string.
    result_value_types: str = "native"
    #: A job's ``workflow``: ``"slug"`` (today's reference) or ``"object"``, the ``{"id", "name"}`` form of
    #: older reference pages (D12), so clients can be tested against both.
    workflow_shape: str = "slug"
    #: ``copyResultsTo`` naming an output the workflow lacks: ``"reject"`` (422) or ``"ignore"`` (assumed).
    copy_results_unknown_outputs: str = "reject"
    #: ``GET /job`` order: ``"newest_first"`` (assumed: the reference says only "sorted by creation
    #: date", D15) or ``"oldest_first"``, so clients can be tested against both.
    job_list_order: str = "newest_first"
    #: Time stands still (jobs do not progress) except through ``POST /__emulator__/clock/advance``.
    manual_clock: bool = False

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply ``changes`` after validating all of them; raise ValueError naming a bad key."""
        known = {f.name for f in fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown config key '{key}'; known keys: {', '.join(sorted(known))}")
            if key in _CHOICES:
                if value not in _CHOICES[key]:
                    raise ValueError(f"'{key}' must be one of: {', '.join(_CHOICES[key])}")
            elif key == "manual_clock":
                if not isinstance(value, bool):
                    raise ValueError("'manual_clock' must be true or false")
            elif key in _COUNTS:
                if isinstance(value, bool) or not isinstance(value, int) or value < _COUNTS[key]:
                    raise ValueError(f"'{key}' must be an integer >= {_COUNTS[key]}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise ValueError(f"'{key}' must be a number")
            elif key in _NON_NEGATIVE and value < 0:
                raise ValueError(f"'{key}' must be >= 0")
        for key, value in changes.items():
            plain = key in _CHOICES or key in _COUNTS or key == "manual_clock"
            setattr(self, key, value if plain else float(value))

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


@dataclass(frozen=True)
class Application:
    """An application, identified by its API key."""

    id: str
    name: str
    key: str = field(repr=False)

    def to_json(self) -> dict[str, str]:
        """``GET /application`` body."""
        return {"id": self.id, "name": self.name}


def make_applications(keys: Mapping[str, str] | None) -> dict[str, Application]:
    """Map API key -> application (ids are stable: derived from the key)."""
    keys = dict(keys or DEFAULT_API_KEYS)
    return {
        key: Application(str(uuid.uuid5(uuid.NAMESPACE_URL, f"musicai-emulator:{key}")), name, key)
        for key, name in keys.items()
    }


def iso(ts: float) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class JobError:
    """``error`` of a FAILED job."""

    code: str
    title: str
    message: str


@dataclass(eq=False)
class Job:
    """A job and its (time-derived) life cycle."""

    id: str
    app: Application
    seq: int
    name: str
    batch_name: str | None
    metadata: dict[str, Any]
    workflow: str
    params: dict[str, Any]
    created_at: float
    ready_at: float
    processing: float
    copy_results_to: dict[str, str] = field(default_factory=dict, repr=False)
    #: The workflow's ``{"id", "name"}``, served instead of the slug when ``workflow_shape`` is ``"object"``.
    workflow_ref: dict[str, str] = field(default_factory=dict, repr=False)
    start_at: float = math.inf
    done_at: float = math.inf
    injected_error: JobError | None = None
    result: dict[str, Any] | None = None
    error: JobError | None = None
    outcome_at: float | None = None
    cancelled: bool = False

    def admit(self, now: float) -> None:
        """The job leaves QUEUED at ``now`` (the runner found a free slot)."""
        self.start_at, self.done_at = now, now + self.processing

    def finish(
        self, now: float, *, result: dict[str, Any] | None = None, error: JobError | None = None
    ) -> None:
        """Record the outcome of processing at emulated time ``now`` (called from a worker thread)."""
        self.result, self.error = result, error
        self.outcome_at = now

    def status(self, now: float) -> str:
        """The status at time ``now``."""
        if now < self.start_at:
            return "QUEUED"
        if self.outcome_at is None or now < self.done_at:
            return "STARTED"
        return "FAILED" if self.error is not None else "SUCCEEDED"

    def to_doc(self, now: float, workflow_shape: str = "slug") -> dict[str, Any]:
        """The job document as ``GET /job/{id}`` returns it (``workflow`` in the given shape)."""
        status = self.status(now)
        final = status in ("SUCCEEDED", "FAILED")
        completed = max(self.done_at, self.outcome_at or 0.0)
        return {
            "id": self.id,
            "app": self.app.name,
            "name": self.name,
            "batchName": self.batch_name,
            "metadata": self.metadata,
            "workflow": self.workflow if workflow_shape == "slug" else dict(self.workflow_ref),
            "workflowParams": self.params,
            "status": status,
            "result": self.result if status == "SUCCEEDED" else None,
            "error": asdict(self.error) if status == "FAILED" and self.error else None,
            "createdAt": iso(self.created_at),
            "startedAt": iso(self.start_at) if status != "QUEUED" else None,
            "completedAt": iso(completed) if final else None,
        }


class JobStore:
    """Jobs of every application, isolated per application, newest first in listings."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._by_app: dict[str, dict[str, Job]] = {}

    def add(self, job: Job) -> None:
        """Store a new job."""
        with self._lock:
            self._by_app.setdefault(job.app.id, {})[job.id] = job

    def new_job(self, app: Application, *, queued: float, processing: float, **kwargs: Any) -> Job:
        """Build (not store) a job created now with the given timings."""
        now = self.clock.now()
        return Job(
            id=str(uuid.uuid4()),
            app=app,
            seq=next(self._seq),
            created_at=now,
            ready_at=now + queued,
            processing=processing,
            **kwargs,
        )

    def get(self, app: Application, job_id: str) -> Job | None:
        """The job ``job_id`` of ``app``, or None (unknown, another app's, or deleted)."""
        with self._lock:
            return self._by_app.get(app.id, {}).get(job_id)

    def delete(self, app: Application, job_id: str) -> Job | None:
        """Delete and return the job, stopping it if it is still running; None if not found."""
        with self._lock:
            job = self._by_app.get(app.id, {}).pop(job_id, None)
        if job is not None:
            job.cancelled = True
        return job

    def query(
        self,
        app: Application,
        *,
        statuses: Iterable[str] = (),
        workflows: Iterable[str] = (),
        batch_name: str | None = None,
        page: int = 0,
        size: int = 100,
        workflow_shape: str = "slug",
        newest_first: bool = True,
    ) -> list[dict[str, Any]]:
        """One page of the app's jobs, newest first (ties: latest created first) unless
        ``newest_first`` is false, filtered."""
        status_set, workflow_set = set(statuses), set(workflows)
        now = self.clock.now()
        with self._lock:
            jobs = list(self._by_app.get(app.id, {}).values())
        selected = (
            job
            for job in (reversed(jobs) if newest_first else jobs)
            if (not workflow_set or job.workflow in workflow_set)
            and (batch_name is None or job.batch_name == batch_name)
            and (not status_set or job.status(now) in status_set)
        )
        page_jobs = itertools.islice(selected, page * size, (page + 1) * size)
        return [job.to_doc(now, workflow_shape) for job in page_jobs]

    def add_history(
        self, app: Application, *, count: int, status: str, spacing: float, **kwargs: Any
    ) -> list[Job]:
        """Store ``count`` jobs already finished with ``status`` (a kept history), older than every
        job of ``app``: created ``spacing`` seconds apart, each finished ``spacing`` after its
        creation, the newest finished by now. No processing runs for them."""
        error = JobError("INTERNAL_ERROR", "Internal error", "Kept history.") if status == "FAILED" else None
        with self._lock:
            existing = self._by_app.get(app.id, {})
            end = min([self.clock.now(), *(job.created_at for job in existing.values())])
            jobs = []
            for index in range(count):
                created = end - (count - index + 1) * spacing
                job = Job(
                    id=str(uuid.uuid4()),
                    app=app,
                    seq=next(self._seq),
                    created_at=created,
                    ready_at=created,
                    processing=spacing,
                    **kwargs,
                )
                job.admit(created)
                job.finish(created + spacing, result=None if error else {}, error=error)
                jobs.append(job)
            # Listings follow insertion order: the history goes before (older than) every job.
            self._by_app[app.id] = {**{job.id: job for job in jobs}, **existing}
        return jobs

    def all(self) -> list[Job]:
        """Every job of every application, newest first."""
        with self._lock:
            jobs = [job for app_jobs in self._by_app.values() for job in app_jobs.values()]
        return sorted(jobs, key=lambda job: job.seq, reverse=True)

    def reset(self) -> None:
        """Delete every job, stopping running ones."""
        with self._lock:
            jobs = [job for app_jobs in self._by_app.values() for job in app_jobs.values()]
            self._by_app = {}
        for job in jobs:
            job.cancelled = True
