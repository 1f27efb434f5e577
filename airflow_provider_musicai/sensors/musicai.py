"""Wait for a Music AI job created elsewhere: poke, reschedule or deferrable mode."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue, conf

from airflow_provider_musicai.hooks._redact import printable
from airflow_provider_musicai.operators._waiting import (
    defer_timeout,
    job_from_event,
    job_id_of,
    log_final_job,
    public_job,
    wait_deadline,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_musicai.hooks.musicai import MusicAIHook


class MusicAIJobSensor(BaseSensorOperator):
    """Wait until a Music AI job is SUCCEEDED; return its final job document (XCom ``return_value``),
    with ``musicai-result://`` references instead of signed result URLs (see the create operator).

    A FAILED job raises ``MusicAIJobFailedError`` with the API's code, title and message. Transient
    API errors (no answer, 429, 5xx once the hook's own retries are spent) count as "not yet" and
    the sensor pokes again; errors that cannot heal (bad key, job not found) fail the task.

    :param job_id: the job id, or a job document (templated).
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poll_interval: seconds between two status requests (sets ``poke_interval``).
    :param timeout: the sensor's usual ``timeout`` in seconds, counted from its first poke.
    :param musicai_conn_id: Airflow connection of type ``musicai``.
    """

    template_fields: Sequence[str] = ("job_id", "musicai_conn_id")
    ui_color = "#b7d7f7"

    def __init__(
        self,
        *,
        job_id: Any,
        musicai_conn_id: str = "musicai_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        self.job_id = job_id
        self.musicai_conn_id = musicai_conn_id
        self.deferrable = deferrable
        self._last_status: str | None = None

    @cached_property
    def hook(self) -> MusicAIHook:
        """The Music AI hook for ``musicai_conn_id``."""
        from airflow_provider_musicai.hooks.musicai import MusicAIHook

        return MusicAIHook(musicai_conn_id=self.musicai_conn_id)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        from airflow_provider_musicai.exceptions import MusicAIError
        from airflow_provider_musicai.hooks.musicai import is_transient
        from airflow_provider_musicai.jobs import TERMINAL_STATUSES, raise_if_failed

        job_id = job_id_of(self.job_id)
        try:
            status = self.hook.get_job_status(job_id)
            job = self.hook.get_job(job_id) if status in TERMINAL_STATUSES else None
        except MusicAIError as exc:
            if not is_transient(exc):
                raise
            self.log.warning("Could not read Music AI job %s (%s); will poke again", job_id, exc)
            return False
        if status != self._last_status:
            self.log.info("Music AI job %s is %s", job_id, printable(status))
            self._last_status = status
        if job is None:
            return False
        raise_if_failed(job)
        log_final_job(self.log, job)
        return PokeReturnValue(is_done=True, xcom_value=public_job(job))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        done = self.poke(context)  # a job that already finished needs no deferral
        if isinstance(done, PokeReturnValue):
            return done.xcom_value
        from airflow_provider_musicai.triggers.musicai import MusicAIJobTrigger

        deadline = wait_deadline(
            timeout=float(self.timeout),
            execution_timeout=self.execution_timeout,
            task_start=getattr(context["ti"], "start_date", None),
        )
        job_id = job_id_of(self.job_id)
        self.log.info(
            "Deferring until Music AI job %s finishes (at most %.0fs)",
            job_id,
            (deadline or time.time()) - time.time(),
        )
        self.defer(
            trigger=MusicAIJobTrigger(
                job_id=job_id,
                musicai_conn_id=self.musicai_conn_id,
                poll_interval=float(self.poke_interval),
                deadline=deadline,
                delete_on_kill=False,  # the sensor did not create the job: never delete it
            ),
            method_name="execute_complete",
            timeout=defer_timeout(deadline),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: the final job document, or the error it reported."""
        from airflow.providers.common.compat.sdk import AirflowSensorTimeout

        from airflow_provider_musicai.exceptions import MusicAITimeoutError

        try:
            job = job_from_event(event)
        except MusicAITimeoutError as exc:
            raise AirflowSensorTimeout(str(exc)) from exc
        log_final_job(self.log, job)
        return job
