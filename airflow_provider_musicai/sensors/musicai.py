"""Wait for Music AI jobs created elsewhere (one, a list, or a batch): poke, reschedule or deferrable."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue, conf

from airflow_provider_musicai import metrics
from airflow_provider_musicai.deadlines import defer_timeout, wait_deadline
from airflow_provider_musicai.defaults import DEFAULT_CONN_ID
from airflow_provider_musicai.exceptions import (
    MusicAIConfigurationError,
    MusicAIError,
    MusicAIJobFailedError,
    MusicAIJobsFailedError,
    MusicAINotFoundError,
    MusicAITimeoutError,
    is_transient,
)
from airflow_provider_musicai.jobs import (
    TERMINAL_STATUSES,
    job_id_of,
    job_ids_of,
    listed_as_asked,
    raise_if_failed,
    workflow_slug,
)
from airflow_provider_musicai.links import MusicAIJobLink, push_job_link
from airflow_provider_musicai.on_timeout import decide, is_trigger_timeout, validate_on_timeout
from airflow_provider_musicai.references import public_job_document
from airflow_provider_musicai.status_log import StatusLog, log_final_job
from airflow_provider_musicai.trigger_events import jobs_from_event

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_musicai.hooks.musicai import MusicAIHook


class MusicAIJobSensor(BaseSensorOperator):
    """Wait until a Music AI job is SUCCEEDED, or until every job of a list or a batch is final.

    With one job (an id or a job document) the return value (XCom ``return_value``) is its final
    document; with a list of jobs (e.g. a mapped upstream's output) or ``batch_name``, the list of
    final documents in job order. Documents carry ``musicai-result://`` references instead of signed
    result URLs (see the create operator). Deferred, all the jobs are waited on by ONE trigger
    through the triggerer's shared poller.

    A FAILED job raises ``MusicAIJobFailedError`` with the API's code, title and message: at once
    with ``fail_fast`` (the default); with ``fail_fast=False`` once every job is final, after the
    list of every final document was pushed to XCom (key ``jobs``), as ``MusicAIJobsFailedError``.
    Transient API errors (no answer, 429, 5xx once the hook's own retries are spent) count as "not
    yet"; errors that cannot heal (bad key, job not found) fail the task.

    :param job_id: a job id, a job document, or a list of them (templated; an XComArg works).
    :param batch_name: wait on every job of this batch instead (templated), as listed when the
        sensor checks (deferred: when it defers). A batch with no job fails the task.
    :param fail_fast: raise on the first FAILED job instead of waiting for the others.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poll_interval: seconds between two status requests (sets ``poke_interval``).
    :param timeout: the sensor's usual ``timeout`` in seconds, counted from its first poke.
    :param on_timeout: the jobs still running when the wait times out (the sensor's ``timeout``,
        ``execution_timeout`` or Airflow's trigger timeout): ``"keep"`` (default: the sensor did not
        create them), ``"delete"``, or ``"auto"``, which deletes them unless Airflow will retry the
        task (a sensor's own ``timeout`` is never retried). The task log says which and why.
    :param musicai_conn_id: Airflow connection of type ``musicai``.

    With one job, the "Music AI job" button opens its page when the connection has a
    ``job_url_template`` extra.
    """

    template_fields: Sequence[str] = ("job_id", "batch_name", "musicai_conn_id")
    ui_color = "#b7d7f7"
    operator_extra_links = (MusicAIJobLink(),)

    def __init__(
        self,
        *,
        job_id: Any = None,
        batch_name: str | None = None,
        fail_fast: bool = True,
        musicai_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 30.0,
        on_timeout: str = "keep",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        self.on_timeout = validate_on_timeout(on_timeout, f"MusicAIJobSensor {self.task_id}")
        self._timeout_settled = False
        if (job_id is None) == (batch_name is None):
            raise ValueError("MusicAIJobSensor takes exactly one of job_id and batch_name")
        self.job_id = job_id
        self.batch_name = batch_name
        self.fail_fast = fail_fast
        self.musicai_conn_id = musicai_conn_id
        self.deferrable = deferrable
        self._status_log: StatusLog | None = None
        self._finished: dict[str, dict[str, Any]] = {}

    @cached_property
    def hook(self) -> MusicAIHook:
        """The Music AI hook for ``musicai_conn_id``."""
        from airflow_provider_musicai.hooks.musicai import MusicAIHook

        return MusicAIHook(musicai_conn_id=self.musicai_conn_id)

    @property
    def _single(self) -> bool:
        """One job (an id or a document), not a list or a batch. One job is a list of one, read
        through the light status endpoint with each change logged, answered with its document rather
        than a list, linked to its page and waited on by the one-job trigger."""
        return self.batch_name is None and isinstance(self.job_id, (str, Mapping))

    def _job_ids(self) -> list[str]:
        """The jobs to wait on, in order: the given ids, or the batch's jobs as listed now."""
        if self._single:
            return [job_id_of(self.job_id)]
        if self.batch_name is None:
            ids = [job_id for job_id in job_ids_of(self.job_id) if job_id is not None]
        else:
            # Each job's own batchName decides: a listing that ignores the filter adds no stranger.
            ids = [
                str(job["id"])
                for job in self.hook.list_jobs(batch_name=self.batch_name)
                if listed_as_asked(job, batch_name=self.batch_name)
            ]
        if not ids:
            what = f"batch {self.batch_name!r}" if self.batch_name is not None else "job_id"
            raise MusicAIConfigurationError(f"MusicAIJobSensor: {what} names no Music AI job to wait for")
        return list(dict.fromkeys(ids))

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Read each job not yet final; done once every job is final."""
        try:
            ids = self._job_ids()
            for job_id in ids:
                if job_id not in self._finished and (job := self._read_if_final(job_id)) is not None:
                    self._finish(job_id, job)
        except MusicAIError as exc:
            if not is_transient(exc):
                raise
            self.log.warning("Could not read the Music AI job(s) (%s); will poke again", exc)
            return False
        waiting = [job_id for job_id in ids if job_id not in self._finished]
        if not waiting:
            return PokeReturnValue(is_done=True, xcom_value=self._answer(context, self._final_jobs(ids)))
        if not self._single:
            self.log.info("%d of %d Music AI job(s) not final yet", len(waiting), len(ids))
        return False

    def _read_if_final(self, job_id: str) -> dict[str, Any] | None:
        """The job's document if it is final, else None (one job: its status first, each change logged)."""
        if self._single:
            status = self.hook.get_job_status(job_id)
            self._log_status(job_id, status)
            return self.hook.get_job(job_id) if status in TERMINAL_STATUSES else None
        job = self.hook.get_job(job_id)
        if job.get("status") not in TERMINAL_STATUSES:
            return None
        self.log.info("Music AI job %s is %s", job_id, job.get("status"))
        return job

    def _log_status(self, job_id: str, status: str) -> None:
        if self._status_log is None or self._status_log.job_id != job_id:
            self._status_log = StatusLog(job_id, self.log)
        self._status_log.observe(status)

    def _finish(self, job_id: str, job: dict[str, Any]) -> None:
        """Keep a final job; with ``fail_fast``, a FAILED one raises at once."""
        self._finished[job_id] = job
        if self.fail_fast:
            raise_if_failed(job)

    def _final_jobs(self, ids: list[str]) -> list[dict[str, Any]]:
        return [self._finished[job_id] for job_id in ids]

    def _answer(self, context: Context, jobs: list[dict[str, Any]]) -> Any:
        """The return value for the final ``jobs`` (in job order), or the error of the FAILED ones.

        One job: its document, after its outcome is logged. Many: the list, once all SUCCEEDED;
        else the list is pushed (key ``jobs``) and :class:`MusicAIJobsFailedError` raised.
        """
        documents = [public_job_document(job) for job in jobs]
        if self._single:
            [job] = jobs
            raise_if_failed(job)
            log_final_job(self.log, job)
            return documents[0]
        failures: list[MusicAIJobFailedError] = []
        for document in documents:
            try:
                raise_if_failed(document)
            except MusicAIJobFailedError as error:
                failures.append(error)
        if failures:
            context["ti"].xcom_push(key="jobs", value=documents)
            raise MusicAIJobsFailedError(failures)
        self.log.info("All %d Music AI job(s) SUCCEEDED", len(documents))
        return documents

    def _push_link(self, context: Context) -> None:
        """The "Music AI job" button: the one job's page, or "" (no link: many jobs have no
        single page)."""
        push_job_link(context, self.hook, job_id_of(self.job_id) if self._single else None)

    @contextmanager
    def _settle_on_timeout(self, context: Context, *timeouts: type[BaseException]) -> Iterator[None]:
        """On a timeout (one of ``timeouts``), keep or delete the unfinished jobs as ``on_timeout`` says."""
        from airflow.providers.common.compat.sdk import AirflowSensorTimeout

        try:
            yield
        except timeouts as exc:
            if self.on_timeout != "keep" and not self._timeout_settled:
                self._timeout_settled = True
                self._settle_timed_out_jobs(context, final=isinstance(exc, AirflowSensorTimeout))
            raise

    def _settle_timed_out_jobs(self, context: Context, *, final: bool) -> None:
        decision = decide(
            self.on_timeout, context["ti"], retries=self.retries or 0, reattach=True, final=final
        )
        try:
            ids = self._job_ids()
        except MusicAIError as exc:
            self.log.warning("Music AI jobs of a timed-out wait could not be listed: %s", exc)
            return
        for job_id in ids:
            try:
                if self.hook.get_job_status(job_id) in TERMINAL_STATUSES:
                    continue  # finished: its results are someone's, never deleted here
                if not decision.delete:
                    self.log.info("Music AI job %s kept: %s", job_id, decision.reason)
                    continue
                self.hook.delete_job(job_id)
            except MusicAINotFoundError:
                continue
            except MusicAIError as exc:
                self.log.warning(
                    "Music AI job %s could not be settled (%s): %s", job_id, decision.reason, exc
                )
                continue
            self.log.info("Music AI job %s deleted: %s", job_id, decision.reason)
            metrics.job_deleted("timeout")

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Airflow's own trigger timeout fails the task here: settle the jobs as any other timeout."""
        if not is_trigger_timeout(next_method, next_kwargs):
            return super().resume_execution(next_method, next_kwargs, context)
        with self._settle_on_timeout(context, Exception):
            return super().resume_execution(next_method, next_kwargs, context)

    def execute(self, context: Context) -> Any:
        from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowTaskTimeout

        self._push_link(context)  # first: Airflow 3 reads the key whenever the task ends or defers
        if not self.deferrable:
            with self._settle_on_timeout(context, AirflowSensorTimeout, AirflowTaskTimeout):
                return super().execute(context)
        # One check before deferring: a job that already finished needs no deferral, and the
        # documents read tell each job's workflow, which lets the shared poller list instead of fetch.
        try:
            ready = self._check_before_deferral(context)
        except MusicAIError as exc:
            if not is_transient(exc):
                raise
            self.log.warning("Could not read the Music AI job(s) (%s); deferring anyway", exc)
            ready = dict.fromkeys(self._job_ids())
        if isinstance(ready, PokeReturnValue):
            return ready.xcom_value
        self._defer(context, ready)

    def _check_before_deferral(self, context: Context) -> PokeReturnValue | dict[str, str | None]:
        """The final answer if every job is final already, else ``{job id: workflow}`` of every
        job (the trigger reports them all, so the task resumed after deferral has every document)."""
        ids = self._job_ids()
        workflows: dict[str, str | None] = {}
        for job_id in ids:
            job = self.hook.get_job(job_id)
            workflows[job_id] = workflow_slug(job)
            if job.get("status") in TERMINAL_STATUSES:
                self._finish(job_id, job)
        if len(self._finished) < len(ids):
            return workflows
        return PokeReturnValue(is_done=True, xcom_value=self._answer(context, self._final_jobs(ids)))

    def _defer(self, context: Context, waiting: dict[str, str | None]) -> None:
        from airflow_provider_musicai.triggers.musicai import MusicAIJobsTrigger, MusicAIJobTrigger

        deadline = wait_deadline(
            timeout=float(self.timeout),
            execution_timeout=self.execution_timeout,
            task_start=getattr(context["ti"], "start_date", None),
        )
        self.log.info(
            "Deferring until %d Music AI job(s) finish (at most %.0fs)",
            len(waiting) - len(self._finished),
            (deadline or time.time()) - time.time(),
        )
        if self._single:
            [(job_id, workflow)] = waiting.items()
            trigger: MusicAIJobTrigger | MusicAIJobsTrigger = MusicAIJobTrigger(
                job_id=job_id,
                musicai_conn_id=self.musicai_conn_id,
                poll_interval=float(self.poke_interval),
                deadline=deadline,
                delete_on_kill=False,  # the sensor did not create the job: never delete it
                workflow=workflow,
            )
        else:
            trigger = MusicAIJobsTrigger(
                job_ids=list(waiting),
                musicai_conn_id=self.musicai_conn_id,
                poll_interval=float(self.poke_interval),
                deadline=deadline,
                fail_fast=self.fail_fast,
                workflows=waiting,
            )
        self.defer(trigger=trigger, method_name="execute_complete", timeout=defer_timeout(deadline))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired: the final document(s), or the error it reported."""
        from airflow.providers.common.compat.sdk import AirflowSensorTimeout

        with self._settle_on_timeout(context, AirflowSensorTimeout):
            try:
                jobs = jobs_from_event(event, fail_fast=self.fail_fast)
            except MusicAITimeoutError as exc:
                raise AirflowSensorTimeout(str(exc)) from exc
            return self._answer(context, jobs)
