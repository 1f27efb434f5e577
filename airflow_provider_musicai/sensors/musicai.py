"""Wait for Music AI jobs created elsewhere (one, a list, or a batch): poke, reschedule or deferrable."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue, conf

from airflow_provider_musicai.deadlines import defer_timeout, wait_deadline
from airflow_provider_musicai.defaults import DEFAULT_CONN_ID
from airflow_provider_musicai.jobs import job_id_of, job_ids_of
from airflow_provider_musicai.links import MusicAIJobLink
from airflow_provider_musicai.references import public_job_document
from airflow_provider_musicai.status_log import StatusLog, log_final_job
from airflow_provider_musicai.trigger_events import job_from_event

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
        from airflow_provider_musicai.operators._on_timeout import validate_on_timeout

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
        return self.batch_name is None and isinstance(self.job_id, (str, Mapping))

    def poke(self, context: Context) -> bool | PokeReturnValue:
        from airflow_provider_musicai.exceptions import MusicAIError
        from airflow_provider_musicai.hooks.musicai import is_transient

        try:
            return self._poke_one(context) if self._single else self._poke_many(context)
        except MusicAIError as exc:
            if not is_transient(exc):
                raise
            self.log.warning("Could not read the Music AI job(s) (%s); will poke again", exc)
            return False

    def _poke_one(self, context: Context) -> bool | PokeReturnValue:
        from airflow_provider_musicai.jobs import TERMINAL_STATUSES

        job_id = job_id_of(self.job_id)
        status = self.hook.get_job_status(job_id)
        self._log_status(job_id, status)
        if status not in TERMINAL_STATUSES:
            return False
        return self._done_one(self.hook.get_job(job_id))

    def _done_one(self, job: dict[str, Any]) -> PokeReturnValue:
        from airflow_provider_musicai.jobs import raise_if_failed

        raise_if_failed(job)
        log_final_job(self.log, job)
        return PokeReturnValue(is_done=True, xcom_value=public_job_document(job))

    def _log_status(self, job_id: str, status: str) -> None:
        if self._status_log is None or self._status_log.job_id != job_id:
            self._status_log = StatusLog(job_id, self.log)
        self._status_log.observe(status)

    def _push_link(self, context: Context) -> None:
        """The "Music AI job" button: the single job's page, or "" (no link: many jobs have no
        single page)."""
        from airflow_provider_musicai.links import push_job_link

        push_job_link(context, self.hook, job_id_of(self.job_id) if self._single else None)

    def _job_ids(self) -> list[str]:
        """The jobs to wait on: the given ids, or the batch's jobs as listed now."""
        from airflow_provider_musicai.exceptions import MusicAIConfigurationError
        from airflow_provider_musicai.jobs import listed_as_asked

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

    def _poke_many(self, context: Context) -> bool | PokeReturnValue:
        """Read each job not yet final (one request each); done once every job is final."""
        from airflow_provider_musicai.jobs import TERMINAL_STATUSES, raise_if_failed

        ids = self._job_ids()
        for job_id in ids:
            if job_id in self._finished:
                continue
            job = self.hook.get_job(job_id)
            if job.get("status") in TERMINAL_STATUSES:
                self.log.info("Music AI job %s is %s", job_id, job.get("status"))
                self._finished[job_id] = job
                if self.fail_fast:
                    raise_if_failed(job)
        waiting = [job_id for job_id in ids if job_id not in self._finished]
        if waiting:
            self.log.info("%d of %d Music AI job(s) not final yet", len(waiting), len(ids))
            return False
        documents = [public_job_document(self._finished[job_id]) for job_id in ids]
        return PokeReturnValue(is_done=True, xcom_value=self._finish_many(context, documents))

    def _finish_many(self, context: Context, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Return the documents if all SUCCEEDED; else push them (key ``jobs``) and raise."""
        from airflow_provider_musicai.exceptions import MusicAIJobFailedError, MusicAIJobsFailedError
        from airflow_provider_musicai.jobs import raise_if_failed

        failures: list[MusicAIJobFailedError] = []
        for job in documents:
            try:
                raise_if_failed(job)
            except MusicAIJobFailedError as error:
                failures.append(error)
        if failures:
            context["ti"].xcom_push(key="jobs", value=documents)
            raise MusicAIJobsFailedError(failures)
        self.log.info("All %d Music AI job(s) SUCCEEDED", len(documents))
        return documents

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
        from airflow_provider_musicai import metrics
        from airflow_provider_musicai.exceptions import MusicAIError, MusicAINotFoundError
        from airflow_provider_musicai.jobs import TERMINAL_STATUSES
        from airflow_provider_musicai.operators._on_timeout import decide

        decision = decide(
            self.on_timeout, context["ti"], retries=self.retries or 0, reattach=True, final=final
        )
        try:
            ids = [job_id_of(self.job_id)] if self._single else self._job_ids()
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
        from airflow_provider_musicai.operators._on_timeout import is_trigger_timeout

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
        from airflow_provider_musicai.exceptions import MusicAIError
        from airflow_provider_musicai.hooks.musicai import is_transient

        # One check before deferring: a job that already finished needs no deferral, and the
        # documents read tell each job's workflow, which lets the shared poller list instead of fetch.
        try:
            ready = self._check_before_deferral(context)
        except MusicAIError as exc:
            if not is_transient(exc):
                raise
            self.log.warning("Could not read the Music AI job(s) (%s); deferring anyway", exc)
            ready = self._waiting_workflows()
        if isinstance(ready, PokeReturnValue):
            return ready.xcom_value
        self._defer(context, ready)

    def _waiting_workflows(self) -> dict[str, str | None]:
        if self._single:
            return {job_id_of(self.job_id): None}
        return dict.fromkeys(self._job_ids())

    def _check_before_deferral(self, context: Context) -> PokeReturnValue | dict[str, str | None]:
        """The final answer if every job is final already, else ``{job id: workflow}`` of every
        job (the trigger reports them all, so the task resumed after deferral has every document)."""
        from airflow_provider_musicai.jobs import TERMINAL_STATUSES, raise_if_failed, workflow_slug

        ids = [job_id_of(self.job_id)] if self._single else self._job_ids()
        workflows: dict[str, str | None] = {}
        for job_id in ids:
            job = self.hook.get_job(job_id)
            workflows[job_id] = workflow_slug(job)
            if job.get("status") not in TERMINAL_STATUSES:
                continue
            if self._single:
                return self._done_one(job)
            self._finished[job_id] = job
            if self.fail_fast:
                raise_if_failed(job)
        if len(self._finished) < len(ids):
            return workflows
        documents = [public_job_document(self._finished[job_id]) for job_id in ids]
        return PokeReturnValue(is_done=True, xcom_value=self._finish_many(context, documents))

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
            job_id, workflow = next(iter(waiting.items()))
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

        from airflow_provider_musicai.exceptions import MusicAITimeoutError

        with self._settle_on_timeout(context, AirflowSensorTimeout):
            if isinstance(event, Mapping) and "job_ids" in event:
                return self._complete_many(context, event)
            try:
                job = job_from_event(event)
            except MusicAITimeoutError as exc:
                raise AirflowSensorTimeout(str(exc)) from exc
        log_final_job(self.log, job)
        return job

    def _complete_many(self, context: Context, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        from airflow.providers.common.compat.sdk import AirflowSensorTimeout

        from airflow_provider_musicai.exceptions import MusicAIError
        from airflow_provider_musicai.jobs import raise_if_failed

        if event.get("status") == "timeout":
            raise AirflowSensorTimeout(str(event.get("message")))
        by_id = {str(job.get("id")): dict(job) for job in event.get("jobs") or [] if isinstance(job, Mapping)}
        if self.fail_fast:
            for job in by_id.values():
                raise_if_failed(job)
        ids = [str(job_id) for job_id in event.get("job_ids") or []]
        if event.get("status") != "success" and not all(job_id in by_id for job_id in ids):
            raise MusicAIError(str(event.get("message") or "Waiting for the Music AI jobs failed"))
        return self._finish_many(context, [by_id[job_id] for job_id in ids])
