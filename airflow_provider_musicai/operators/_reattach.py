"""Retry without duplicates: find the job an earlier try of the same task instance created.

Every job a task instance creates carries a deterministic idempotency key in its metadata,
derived from ``dag_id``, ``run_id``, ``task_id`` and ``map_index`` (the same for every try), plus a
*generation* suffix that grows only when an earlier job FAILED or vanished. Before creating a job,
a retry looks for the newest job of its task instance:

* still QUEUED/STARTED -> reattach and wait for it (no second job);
* SUCCEEDED -> reuse its result (the worker died after the job finished);
* FAILED -> create a fresh job under the next generation's key (retrying a failed job is the
  point of a retry), then delete the FAILED one (its error is in the earlier try's log), so a
  task instance leaves at most one job behind;
* gone (deleted) or never created -> create one.

Where the job is looked up:

* Airflow 3.3+: the task state store (``context["task_state_store"]``) records the key *before*
  the job is created and the job id right after, so a retry reads one row and makes one request.
  Recording the key first closes the window ``ResumableJobMixin`` leaves open (a worker killed
  between creation and the record): the key is then looked up in the API.
* Older Airflow, or an empty store on a retry: one scan of the workflow's jobs (``GET /job``,
  filtered by workflow) collects every generation of this task instance's key.

A first try (``try_number == 1``) with nothing recorded creates its job without any lookup, so
the normal path costs no extra request. Within one call, the hook itself never creates two jobs
when a POST /job answer is lost (it looks the key up before sending again).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_musicai import metrics
from airflow_provider_musicai.exceptions import MusicAINotFoundError
from airflow_provider_musicai.jobs import JobStatus
from airflow_provider_musicai.operators._task_state import TaskStateSlot

if TYPE_CHECKING:
    from airflow_provider_musicai.common import SupportsLog
    from airflow_provider_musicai.hooks.musicai import MusicAIHook

#: Key of this provider's record in Airflow 3.3's task state store.
STATE_STORE_KEY = "musicai_job"


@dataclass(frozen=True)
class TaskIdentity:
    """The task instance a job belongs to; equal for every try of it."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    try_number: int

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> TaskIdentity:
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        return cls(
            dag_id=str(ti.dag_id),
            task_id=str(ti.task_id),
            run_id=str(ti.run_id),
            map_index=-1 if map_index is None else int(map_index),
            try_number=int(getattr(ti, "try_number", 1) or 1),
        )

    @property
    def base_key(self) -> str:
        """``airflow-<40 hex>``: short, fixed length, and free of user text."""
        raw = "\x1f".join((self.dag_id, self.run_id, self.task_id, str(self.map_index)))
        return "airflow-" + hashlib.sha256(raw.encode()).hexdigest()[:40]

    def metadata(self) -> dict[str, str | int]:
        """Job metadata naming the task instance, to trace a job back from the Music AI side."""
        meta: dict[str, str | int] = {
            "airflowDagId": self.dag_id,
            "airflowTaskId": self.task_id,
            "airflowRunId": self.run_id,
            "airflowTryNumber": self.try_number,
        }
        if self.map_index >= 0:
            meta["airflowMapIndex"] = self.map_index
        return meta


def generation_key(base: str, generation: int) -> str:
    """The idempotency key of a task instance's ``generation``-th job (0 is the first)."""
    return base if generation == 0 else f"{base}.{generation}"


def generation_of(base: str, key: Any) -> int | None:
    """The generation a key stands for, or None if it is not one of ``base``'s keys."""
    if not isinstance(key, str):
        return None
    if key == base:
        return 0
    prefix = base + "."
    if key.startswith(prefix) and key[len(prefix) :].isdigit():
        return int(key[len(prefix) :])
    return None


@dataclass(frozen=True)
class Resolution:
    """What to do: use ``job`` (an existing job), or create one under ``key``."""

    key: str
    generation: int
    job: dict[str, Any] | None
    reason: str
    superseded: str | None = None

    @property
    def existing_id(self) -> str | None:
        return None if self.job is None else str(self.job["id"])


class JobLedger:
    """Finds and records the job of one task instance across its tries."""

    def __init__(
        self,
        hook: MusicAIHook,
        identity: TaskIdentity,
        workflow: str,
        store: Any,
        log: SupportsLog,
    ) -> None:
        self.hook = hook
        self.identity = identity
        self.workflow = workflow
        self.log = log
        self.slot = TaskStateSlot(store, STATE_STORE_KEY, log, "a retry looks the job up by its key")
        self.base = identity.base_key

    # -- deciding ---------------------------------------------------------------------------

    def resolve(self) -> Resolution:
        """Decide whether to reattach, reuse or create, looking up as little as possible."""
        record = self._read_record()
        if record is not None:
            generation = int(record.get("generation", 0))
            job_id = record.get("job_id")
            if job_id:
                job = self._get_job(str(job_id))
                if job is None:
                    return self._create(generation + 1, f"job {job_id} recorded by an earlier try is gone")
                how = "recorded in the task state store"
            else:
                job = self.hook.find_job_by_idempotency_key(str(record["key"]), workflow=self.workflow)
                if job is None:
                    return self._create(generation, "an earlier try stopped before its job was created")
                how = "found by the idempotency key recorded in the task state store"
            return self._decide(job, generation, how)
        if self.identity.try_number <= 1:
            return self._create(0, "first try")
        found = self._scan()
        if not found:
            return self._create(0, f"no job of an earlier try (try {self.identity.try_number})")
        generation = max(found)
        return self._decide(found[generation], generation, "found by its idempotency key in GET /job")

    def _decide(self, job: dict[str, Any], generation: int, how: str) -> Resolution:
        status = job.get("status")
        job_id = job.get("id")
        if status == JobStatus.FAILED:
            error = job.get("error") if isinstance(job.get("error"), Mapping) else {}
            code = error.get("code") if isinstance(error, Mapping) else None
            return Resolution(
                key=generation_key(self.base, generation + 1),
                generation=generation + 1,
                job=None,
                reason=f"job {job_id} of an earlier try FAILED ({code or 'UNKNOWN'})",
                superseded=str(job_id),
            )
        metrics.job_reattached()
        if status == JobStatus.SUCCEEDED:
            reason = f"job {job_id} of an earlier try ({how}) already SUCCEEDED; reusing its result"
        else:
            reason = f"reattaching to job {job_id} of an earlier try ({how}), now {status}"
        return Resolution(
            key=generation_key(self.base, generation), generation=generation, job=job, reason=reason
        )

    def _create(self, generation: int, reason: str) -> Resolution:
        return Resolution(
            key=generation_key(self.base, generation), generation=generation, job=None, reason=reason
        )

    def _get_job(self, job_id: str) -> dict[str, Any] | None:
        try:
            return self.hook.get_job(job_id)
        except MusicAINotFoundError:
            return None

    def _scan(self) -> dict[int, dict[str, Any]]:
        """Every job of this task instance, by generation: one pass over the workflow's jobs."""
        found: dict[int, dict[str, Any]] = {}
        for key, job in self.hook.iter_keyed_jobs(self.workflow):
            generation = generation_of(self.base, key)
            if generation is None:
                continue
            # Two jobs under one key only happen when a run was deleted and re-created under the
            # same run_id: the newer job is this run's.
            known = found.get(generation)
            if known is None or str(job.get("createdAt") or "") > str(known.get("createdAt") or ""):
                found[generation] = job
        return found

    # -- recording (Airflow 3.3+ task state store) ------------------------------------------

    def _read_record(self) -> dict[str, Any] | None:
        """The record of this task instance's key (a record of another key is not ours)."""
        record = self.slot.get()
        if record is not None and generation_of(self.base, record.get("key")) is not None:
            return record
        return None

    def record(self, resolution: Resolution, job_id: str | None) -> None:
        """Remember the key (before creating) or the job id (after) for the next try."""
        self.slot.set({"key": resolution.key, "generation": resolution.generation, "job_id": job_id})
