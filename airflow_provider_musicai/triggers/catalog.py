"""Wait on the in-flight window of a catalog run: fire as soon as some of its jobs are final.

:class:`MusicAIJobsTrigger` waits for *every* job; a catalog run wants the opposite: wake the
worker when enough jobs finished to top the window up again. The waiting itself is the
triggerer's shared poller (``_poller.py``): one listing per 100 active jobs per cycle, and the jobs
that left the active set confirmed from pages of the finished listing (a single ``GET /job/:id``
only for those the pages did not show), whatever the number of catalog triggers.

Event::

    {"status": "finished" | "error", "finished": {job_id: {"status", "result", "error"}},
     "message": str, "carry": dict | None}

``result`` is the job's result with URL values as ``musicai-result://`` references (no signed
URL ever reaches the event); ``error`` is ``{"code", "title", "message"}`` of a FAILED job.
A job that no longer exists is reported FAILED with the code ``GONE``.

The trigger never fires within ``hold`` seconds of its start (5 s by default). A deferred
task's worker exits after ``defer()`` and its executor reports that exit as a *success* of the same
try; if the trigger fires before the scheduler has processed that stale event, the scheduler sees
the resumed try queued or running, takes the event for a task killed behind its back ("state
mismatch") and fails the try (apache/airflow#66374 for the scheduled state, fixed in 3.2.2;
#67287 for queued and #72716 for running, not fixed in 3.3.2). A catalog run re-defers after every
wake-up with jobs that may already be final, so without a hold it fires within a second or two of
its deferral and loses tries to that race. Holding the event a few seconds lets the scheduler drain
the stale event first; the jobs keep running meanwhile, so it costs at most the hold per wake-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_musicai import metrics
from airflow_provider_musicai.common import DEFAULT_CONN_ID, DEFAULT_DEFERRAL_HOLD, printable

if TYPE_CHECKING:
    from airflow_provider_musicai.triggers._poller import SharedJobPoller


def track_outcome(job: Mapping[str, Any]) -> dict[str, Any]:
    """What a catalog run records of a final job: status, public result and error (no URL secret)."""
    from airflow_provider_musicai.references import public_job_document

    public = public_job_document(job)
    error = public.get("error") if isinstance(public.get("error"), Mapping) else None
    return {
        "status": str(public.get("status")),
        "result": public.get("result") if public.get("status") == "SUCCEEDED" else None,
        "error": None
        if error is None
        else {key: printable(str(error.get(key) or "")) for key in ("code", "title", "message")},
    }


def gone_outcome(job_id: str) -> dict[str, Any]:
    """The outcome of a job deleted behind the run's back: FAILED, code ``GONE``."""
    return {
        "status": "FAILED",
        "result": None,
        "error": {"code": "GONE", "title": "Job not found", "message": f"job {job_id} no longer exists"},
    }


class MusicAICatalogTrigger(BaseTrigger):
    """Wait until at least ``min_finished`` of ``job_ids`` are final (or all of them are).

    Every job already final when the threshold is reached is reported too, so one wake-up
    records a whole poll cycle's worth of finished jobs.

    :param job_ids: the in-flight window (only ids: never the catalog, never a URL).
    :param workflow: the jobs' workflow slug (the poller lists by it).
    :param min_finished: how many final jobs make the trigger fire.
    :param musicai_conn_id: Airflow connection id.
    :param poll_interval: seconds between two poll cycles of the shared poller.
    :param max_consecutive_errors: transient poll failures tolerated in a row.
    :param delete_on_kill: on Airflow 3.3+, delete the window's running jobs when a user kills the
        deferred task (a triggerer restart never deletes anything).
    :param carry: the waiting task's own small state (its cursor and window), handed back as the
        event's ``carry``: Airflow's ``dag.test()`` drops a deferral's ``next_kwargs``.
    :param hold: seconds after the trigger's start before it may fire, even if its jobs are
        already final (Airflow's fire-right-after-deferral race, see the module docstring).
    """

    def __init__(
        self,
        job_ids: list[str],
        workflow: str | None,
        min_finished: int = 1,
        musicai_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 10.0,
        max_consecutive_errors: int = 5,
        delete_on_kill: bool = False,
        carry: dict[str, Any] | None = None,
        hold: float = DEFAULT_DEFERRAL_HOLD,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.job_ids = list(dict.fromkeys(job_ids))
        self.workflow = workflow
        self.min_finished = max(1, min(int(min_finished), len(self.job_ids) or 1))
        self.musicai_conn_id = musicai_conn_id
        self.poll_interval = float(poll_interval)
        self.max_consecutive_errors = int(max_consecutive_errors)
        self.delete_on_kill = bool(delete_on_kill)
        self.carry = carry
        self.hold = max(0.0, float(hold))
        self._finished: set[str] = set()
        self.holding = False  # True while a ready event waits out the hold (tests wait on it)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Ids, a slug and numbers: the in-flight window only."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_ids": self.job_ids,
                "workflow": self.workflow,
                "min_finished": self.min_finished,
                "musicai_conn_id": self.musicai_conn_id,
                "poll_interval": self.poll_interval,
                "max_consecutive_errors": self.max_consecutive_errors,
                "delete_on_kill": self.delete_on_kill,
                "carry": self.carry,
                "hold": self.hold,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait, hold the event until ``hold`` seconds after the start, then yield it and return."""
        from airflow_provider_musicai.triggers._poller import shared_poller

        loop = asyncio.get_running_loop()
        started = loop.time()
        poller = shared_poller(self.musicai_conn_id, self.poll_interval, self.max_consecutive_errors)
        self.log.info(
            "Waiting for %d of %d Music AI catalog job(s) to finish", self.min_finished, len(self.job_ids)
        )
        waits: dict[asyncio.Future[dict[str, Any]], str] = {
            asyncio.ensure_future(poller.wait(job_id, self.workflow)): job_id for job_id in self.job_ids
        }
        try:
            event = await self._collect(waits, poller)
            remaining = self.hold - (loop.time() - started)
            if remaining > 0:
                self.log.info("Holding the event %.1f s more (Airflow's fire-after-deferral race)", remaining)
                self.holding = True
                await asyncio.sleep(remaining)
                self.holding = False
            yield event
        finally:
            for wait in waits:
                wait.cancel()

    async def _collect(
        self, waits: dict[asyncio.Future[dict[str, Any]], str], poller: SharedJobPoller
    ) -> TriggerEvent:
        from airflow_provider_musicai.exceptions import MusicAINotFoundError

        finished: dict[str, dict[str, Any]] = {}
        pending = set(waits)
        while pending and len(finished) < self.min_finished:
            cycle = poller.stats.cycles
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            # A cycle confirms its finished jobs concurrently: take the whole cycle, or the jobs
            # confirmed after the event would be fetched again by the next trigger.
            while pending and poller.stats.cycles == cycle and poller.waiting:
                more, pending = await asyncio.wait(pending, timeout=0.05)
                done |= more
            done |= {wait for wait in pending if wait.done()}
            pending -= done
            for wait in done:
                job_id = waits[wait]
                self._finished.add(job_id)
                try:
                    finished[job_id] = track_outcome(wait.result())
                except MusicAINotFoundError:
                    finished[job_id] = gone_outcome(job_id)
                except Exception as exc:
                    message = f"Polling Music AI job {job_id} failed: {type(exc).__name__}: {exc}"
                    self.log.warning("%s", message)
                    return self._event("error", finished, message)
        message = f"{len(finished)} Music AI catalog job(s) finished, {len(pending)} still running"
        self.log.info("%s", message)
        return self._event("finished", finished, message)

    def _event(self, status: str, finished: dict[str, dict[str, Any]], message: str) -> TriggerEvent:
        payload = {"status": status, "finished": finished, "message": message, "carry": self.carry}
        return TriggerEvent(payload)  # type: ignore[no-untyped-call]

    async def on_kill(self) -> None:
        """Airflow 3.3+: the user killed the deferred task; delete the running jobs if asked to."""
        if not self.delete_on_kill:
            return
        from airflow_provider_musicai.hooks.musicai import MusicAIHook

        hook = MusicAIHook(musicai_conn_id=self.musicai_conn_id)
        for job_id in self.job_ids:
            if job_id in self._finished:
                continue
            try:
                deleted = await hook.adelete_job_if_exists(job_id)
            except Exception as exc:
                self.log.warning("Could not delete Music AI job %s: %s", job_id, exc)
                continue
            if deleted:
                metrics.job_deleted("kill")
