"""Wait for a Music AI job in Airflow's triggerer, without holding a worker slot.

The trigger waits through the triggerer's shared poller (``_poller.py``): the triggers of one
triggerer process that wait on jobs of the same connection share one loop that lists the active
jobs (a request per 100) and fetches a job only once it has left that set, over one pooled httpx2
client. Each trigger still emits exactly one event, with its own job, in the format
:mod:`~airflow_provider_musicai.trigger_events` defines (and reads back for the resumed task). Events
carry no signed URL: Airflow logs trigger events and stores them in its database, and a signed URL's
query string is a credential. URL results are ``musicai-result://<job id>/<key>`` references (the
hook resolves them to fresh URLs when a job is created from them or results are downloaded); input
URLs lose their query string.

Transient errors (network, 429, 5xx, unreadable bodies) are tolerated up to
``max_consecutive_errors`` poll cycles in a row; errors that retrying cannot fix (bad key, job
gone) end the wait at once.

Killing the task deletes the job when ``delete_on_kill`` is set: through ``on_kill`` on Airflow
3.3+, which the triggerer calls only on a user action (mark failed/success, clear), and on
Airflow 2 by checking, when the trigger is cancelled, that the task instance left the DEFERRED
state for a reason other than a timeout. Airflow 3.0 to 3.2 offer neither (no ``on_kill``, and a
trigger there cannot read its task's row): the job is kept and the triggerer log says so. A
triggerer restart never deletes the job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow import __version__ as airflow_version
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_musicai import metrics
from airflow_provider_musicai.defaults import DEFAULT_CONN_ID
from airflow_provider_musicai.redaction import printable
from airflow_provider_musicai.references import public_job_document
from airflow_provider_musicai.status_log import StatusLog
from airflow_provider_musicai.timestamps import utc_stamp
from airflow_provider_musicai.trigger_events import failure_message, job_event, jobs_event

if TYPE_CHECKING:
    from airflow_provider_musicai.hooks.musicai import MusicAIHook

#: Airflow 3.3+ calls ``BaseTrigger.on_kill`` on user actions; older versions only ``cleanup``.
TRIGGER_HAS_ON_KILL = "on_kill" in vars(BaseTrigger)
#: Airflow 3.0-3.2: no ``on_kill``, and triggers run where the metadata database is out of reach, so
#: a cancelled trigger cannot tell a user's kill from a triggerer restart.
KILL_UNDETECTABLE = not TRIGGER_HAS_ON_KILL and airflow_version.split(".")[0] != "2"


class MusicAIJobTrigger(BaseTrigger):
    """Poll one Music AI job until it is SUCCEEDED or FAILED, the deadline passes, or polling fails.

    :param job_id: the job to wait for.
    :param musicai_conn_id: Airflow connection id (the key is read from it in the triggerer; it
        is never part of the trigger's kwargs).
    :param poll_interval: seconds between two status requests.
    :param deadline: epoch seconds (UTC) after which a ``timeout`` event is emitted; None waits
        forever.
    :param delete_on_kill: delete the job when a user kills the deferred task.
    :param max_consecutive_errors: transient poll failures tolerated in a row (the hook already
        retries each request) before an ``error`` event.
    :param workflow: the job's workflow slug, if known (lets a shared poller filter the job list).
    """

    def __init__(
        self,
        job_id: str,
        musicai_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 10.0,
        deadline: float | None = None,
        delete_on_kill: bool = False,
        max_consecutive_errors: int = 5,
        workflow: str | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.job_id = job_id
        self.musicai_conn_id = musicai_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline) if deadline is not None else None
        self.delete_on_kill = bool(delete_on_kill)
        self.max_consecutive_errors = int(max_consecutive_errors)
        self.workflow = workflow
        self._event_sent = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Plain, JSON-friendly kwargs: ids and numbers, never a secret or a URL."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "musicai_conn_id": self.musicai_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "delete_on_kill": self.delete_on_kill,
                "max_consecutive_errors": self.max_consecutive_errors,
                "workflow": self.workflow,
            },
        )

    def _hook(self) -> MusicAIHook:
        from airflow_provider_musicai.hooks.musicai import MusicAIHook

        return MusicAIHook(musicai_conn_id=self.musicai_conn_id)

    def _event(
        self, status: str, message: str, job: dict[str, Any] | None = None, last_status: str | None = None
    ) -> TriggerEvent:
        self._event_sent = True
        payload = job_event(status, self.job_id, message, job, last_status)
        return TriggerEvent(payload)  # type: ignore[no-untyped-call]

    def _remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.time()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll, then yield one event and return."""
        try:
            event = await self._wait()
        except asyncio.CancelledError:
            if self.delete_on_kill and not TRIGGER_HAS_ON_KILL and not self._event_sent:
                await self._legacy_delete_if_killed()
            raise
        yield event

    async def _wait(self) -> TriggerEvent:
        from airflow_provider_musicai.triggers._poller import shared_poller

        status_log = StatusLog(self.job_id, self.log, started=time.time())
        last_status: str | None = None

        def on_status(status: str) -> None:
            nonlocal last_status
            last_status = status
            status_log.observe(status)

        self.log.info(
            "Waiting for Music AI job %s (poll every %.1fs, deadline %s)",
            self.job_id,
            self.poll_interval,
            utc_stamp(self.deadline) if self.deadline is not None else "none",
        )
        remaining = self._remaining()
        if remaining is not None and remaining <= 0:
            return self._timeout_event(last_status)
        # Every trigger of this triggerer waiting on jobs of the same connection shares one poller:
        # a list request per 100 active jobs per cycle instead of a request per job.
        poller = shared_poller(self.musicai_conn_id, self.poll_interval, self.max_consecutive_errors)
        try:
            job = await asyncio.wait_for(
                poller.wait(self.job_id, self.workflow, on_status), timeout=remaining
            )
        except TimeoutError:
            return self._timeout_event(last_status)
        except Exception as exc:
            return self._event(
                "error",
                f"Polling Music AI job {self.job_id} failed: {type(exc).__name__}: {exc}",
                last_status=last_status,
            )
        return self._final_event(job)

    def _final_event(self, job: dict[str, Any]) -> TriggerEvent:
        status = str(job.get("status"))
        if status == "SUCCEEDED":
            result = job.get("result")
            keys = sorted(result) if isinstance(result, dict) else []
            self.log.info(
                "Music AI job %s SUCCEEDED; result keys: %s", self.job_id, ", ".join(keys) or "none"
            )
            message = f"Music AI job {self.job_id} SUCCEEDED"
            return self._event("success", message, job=public_job_document(job), last_status=status)
        message = failure_message(job)
        self.log.warning("%s", message)
        return self._event("error", message, job=public_job_document(job), last_status=status)

    def _timeout_event(self, last_status: str | None) -> TriggerEvent:
        message = (
            f"Music AI job {self.job_id} did not finish before the deadline "
            f"({utc_stamp(self.deadline)}); last status: {printable(last_status or 'unknown')}"
        )
        self.log.warning("%s", message)
        return self._event("timeout", message, last_status=last_status)

    async def on_kill(self) -> None:
        """Airflow 3.3+: the user killed the deferred task; delete the job if asked to."""
        if self.delete_on_kill and not self._event_sent:
            await self._delete_job("the deferred task was killed")

    async def _delete_job(self, reason: str) -> None:
        try:
            deleted = await self._hook().adelete_job_if_exists(self.job_id)
        except Exception as exc:
            self.log.warning("Could not delete Music AI job %s (%s): %s", self.job_id, reason, exc)
            return
        if not deleted:
            self.log.info("Music AI job %s was already gone (%s)", self.job_id, reason)
            return
        self.log.info("Deleted Music AI job %s because %s", self.job_id, reason)
        metrics.job_deleted("kill")

    async def _legacy_delete_if_killed(self) -> None:
        """Airflow 2: tell a user kill from a triggerer restart or timeout by the TI's state."""
        if KILL_UNDETECTABLE:
            self.log.info(
                "Music AI job %s kept: on Airflow %s a cancelled trigger cannot tell a killed task from "
                "a triggerer restart (Airflow 3.3 tells it); delete the job yourself if its task was "
                "killed",
                self.job_id,
                airflow_version,
            )
            return
        ti = self.task_instance
        if ti is None:
            return
        try:
            from asgiref.sync import sync_to_async

            killed = await sync_to_async(_ti_left_deferral_by_user, thread_sensitive=False)(ti)
        except Exception as exc:
            self.log.warning("Could not read the state of task %s: %s", getattr(ti, "task_id", "?"), exc)
            return
        if killed:
            await self._delete_job("the deferred task was killed (its state is no longer deferred)")


def _ti_left_deferral_by_user(ti: Any) -> bool:
    """Airflow 2: True when the task instance is no longer deferred and not timed out either.

    A triggerer restart or rebalance leaves the row DEFERRED; a trigger timeout moves it to
    SCHEDULED with ``next_method="__fail__"``; a user mark-failed/success or clear does neither.
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        row = (
            session.query(TaskInstance.state, TaskInstance.next_method)
            .filter(
                TaskInstance.dag_id == ti.dag_id,
                TaskInstance.task_id == ti.task_id,
                TaskInstance.run_id == ti.run_id,
                TaskInstance.map_index == ti.map_index,
            )
            .one_or_none()
        )
    if row is None:
        return True
    state, next_method = row
    return state != TaskInstanceState.DEFERRED and next_method != "__fail__"


class MusicAIJobsTrigger(BaseTrigger):
    """Wait on many Music AI jobs with one trigger, through the triggerer's shared poller.

    Emits one event (format: :mod:`~airflow_provider_musicai.trigger_events`). ``success``: every
    job SUCCEEDED. ``error``: a job FAILED (at once with ``fail_fast``, else once all are final) or
    polling failed. ``timeout``: the deadline passed.

    :param job_ids: the jobs to wait for.
    :param workflows: each job's workflow slug where known (lets the poller list instead of fetch).
    :param fail_fast: report the first FAILED job at once instead of waiting for the others.

    Other parameters as :class:`MusicAIJobTrigger`.
    """

    def __init__(
        self,
        job_ids: list[str],
        musicai_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 10.0,
        deadline: float | None = None,
        fail_fast: bool = True,
        workflows: dict[str, str | None] | None = None,
        max_consecutive_errors: int = 5,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.job_ids = list(dict.fromkeys(job_ids))
        self.musicai_conn_id = musicai_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline) if deadline is not None else None
        self.fail_fast = bool(fail_fast)
        self.workflows = dict(workflows or {})
        self.max_consecutive_errors = int(max_consecutive_errors)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Plain, JSON-friendly kwargs: ids, slugs and numbers, never a secret or a URL."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_ids": self.job_ids,
                "musicai_conn_id": self.musicai_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "fail_fast": self.fail_fast,
                "workflows": self.workflows,
                "max_consecutive_errors": self.max_consecutive_errors,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait on every job, then yield one event and return."""
        from airflow_provider_musicai.triggers._poller import shared_poller

        poller = shared_poller(self.musicai_conn_id, self.poll_interval, self.max_consecutive_errors)
        finished: dict[str, dict[str, Any]] = {}
        self.log.info(
            "Waiting for %d Music AI job(s) (poll every %.1fs)", len(self.job_ids), self.poll_interval
        )
        waits: dict[asyncio.Future[dict[str, Any]], str] = {
            asyncio.ensure_future(poller.wait(job_id, self.workflows.get(job_id))): job_id
            for job_id in self.job_ids
        }
        remaining = None if self.deadline is None else self.deadline - time.time()
        try:
            yield await self._collect(waits, finished, remaining)
        finally:
            for wait in waits:
                wait.cancel()

    async def _collect(
        self,
        waits: dict[asyncio.Future[dict[str, Any]], str],
        finished: dict[str, dict[str, Any]],
        remaining: float | None,
    ) -> TriggerEvent:
        pending = set(waits)
        loop = asyncio.get_running_loop()
        end = None if remaining is None else loop.time() + remaining
        while pending:
            left = None if end is None else end - loop.time()
            if left is not None and left <= 0:
                return self._event(
                    "timeout", finished, f"{len(pending)} Music AI job(s) not final by the deadline"
                )
            done, pending = await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            for wait in done:
                job_id = waits[wait]
                try:
                    job = wait.result()
                except Exception as exc:
                    return self._event(
                        "error",
                        finished,
                        f"Polling Music AI job {job_id} failed: {type(exc).__name__}: {exc}",
                    )
                finished[job_id] = public_job_document(job)
                self.log.info("Music AI job %s is %s", job_id, job.get("status"))
                if job.get("status") != "SUCCEEDED" and self.fail_fast:
                    return self._event("error", finished, failure_message(job))
        failed = [job_id for job_id, job in finished.items() if job.get("status") != "SUCCEEDED"]
        if failed:
            return self._event(
                "error", finished, f"{len(failed)} Music AI job(s) FAILED: {', '.join(failed)}"
            )
        return self._event("success", finished, f"{len(finished)} Music AI job(s) SUCCEEDED")

    def _event(self, status: str, finished: dict[str, dict[str, Any]], message: str) -> TriggerEvent:
        (self.log.info if status == "success" else self.log.warning)("%s", message)
        payload = jobs_event(status, self.job_ids, finished, message)
        return TriggerEvent(payload)  # type: ignore[no-untyped-call]
