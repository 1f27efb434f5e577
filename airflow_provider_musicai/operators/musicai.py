"""Operators for the Music AI API: upload audio, run a job (and wait, deferred or not), fetch results,
delete jobs.

The hook (and with it requests, httpx2 and fsspec) is imported only when a task runs, so importing
this module while parsing DAG files costs little more than ``airflow.sdk`` itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_musicai import metrics
from airflow_provider_musicai.common import DEFAULT_CONN_ID, redact_url
from airflow_provider_musicai.copy_results import copy_targets, destinations, with_destinations
from airflow_provider_musicai.deadlines import as_seconds, defer_timeout, wait_deadline
from airflow_provider_musicai.exceptions import (
    MusicAIBadInputError,
    MusicAIError,
    MusicAIJobFailedError,
    MusicAINotFoundError,
    MusicAITimeoutError,
)
from airflow_provider_musicai.jobs import job_id_of, job_ids_of
from airflow_provider_musicai.lineage import record_asset_events, report_hook_lineage, static_outlets
from airflow_provider_musicai.links import MusicAIJobLink, push_job_link
from airflow_provider_musicai.on_timeout import decide, is_trigger_timeout, validate_on_timeout
from airflow_provider_musicai.operators._reattach import JobLedger, TaskIdentity, generation_key
from airflow_provider_musicai.references import public_job_document
from airflow_provider_musicai.status_log import log_final_job
from airflow_provider_musicai.trigger_events import job_from_event

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, XComArg

    from airflow_provider_musicai.copy_results import CopyTarget
    from airflow_provider_musicai.hooks.musicai import MusicAIHook

RESULT_XCOM_PREFIX = "result."
"""XCom key prefix under which the create-job operator pushes each result: ``result.vocals``..."""


def musicai_result(task: Any, key: str) -> XComArg:
    """One result of a Music AI job task, for another task's arguments, without Jinja.

    ``task`` is a ``MusicAICreateJobOperator`` (``stems.result("vocals")`` is the same), a mapped
    one (``.partial().expand()``: the list of every map index's value), or what a ``@task.musicai``
    call returned. Airflow maps (``.expand()``) only over return values: to map a second job over
    a mapped job's results, use ``stems.output.map(lambda job: {"inputUrl":
    job["result"]["vocals"]})``. The value is the job's result as pushed to XCom: a
    ``musicai-result://`` reference for URL results, resolved to a fresh signed URL only inside
    the hook.
    """
    arg = task.output if hasattr(task, "output") else task
    return arg[RESULT_XCOM_PREFIX + key]  # type: ignore[no-any-return]


class _MusicAIOperator(BaseOperator):
    """Holds the connection id, builds the hook lazily, and reports OpenLineage from what
    ``execute`` recorded (``_lineage_inputs``, ``_lineage_outputs``, ``_lineage_job``)."""

    #: The hook's ``item_log_level`` (see :class:`~airflow_provider_musicai.hooks.musicai.MusicAIHook`).
    hook_item_log_level: int = logging.INFO

    def __init__(self, *, musicai_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.musicai_conn_id = musicai_conn_id
        self._lineage_inputs: list[str] = []
        self._lineage_outputs: list[str] = []
        self._lineage_job: dict[str, Any] | None = None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (``[openlineage]`` extra): the input and output datasets (storage URIs, local
        files, ``musicai-result://`` outputs of a job) and a ``musicai`` run facet with the job id,
        workflow and application. Signed URLs never appear."""
        from airflow_provider_musicai._openlineage import operator_lineage

        job = self._lineage_job
        if job is not None and job.get("application") is None:
            job = {**job, "application": self._application_name()}
        return operator_lineage(self._lineage_inputs, self._lineage_outputs, job)

    def _delete_quietly(self, job_id: str, reason: str, *, log_deletion: bool = True) -> bool:
        """Delete the job, a job already gone or an API error being logged, not raised; whether
        this call deleted it. ``log_deletion=False``: no INFO line per deleted job (a catalog's)."""
        try:
            deleted = self.hook.delete_job_if_exists(job_id)
        except MusicAIError as exc:
            self.log.warning("Could not delete Music AI job %s (%s): %s", job_id, reason, exc)
            return False
        if not deleted:
            self.log.info("Music AI job %s was already gone", job_id)
        elif log_deletion:
            self.log.info("Deleted Music AI job %s because %s", job_id, reason)
        return deleted

    def _application_name(self) -> str | None:
        try:
            name = self.hook.get_application().get("name")
        except MusicAIError as exc:
            self.log.info("OpenLineage: the Music AI application is unknown (%s)", exc)
            return None
        return None if name is None else str(name)

    @cached_property
    def hook(self) -> MusicAIHook:
        """The Music AI hook for ``musicai_conn_id``, its per-file and per-job lines at
        ``hook_item_log_level``."""
        from airflow_provider_musicai.hooks.musicai import MusicAIHook

        hook = MusicAIHook(musicai_conn_id=self.musicai_conn_id)
        hook.item_log_level = self.hook_item_log_level
        return hook


class MusicAIUploadOperator(_MusicAIOperator):
    """Upload an audio file to Music AI's temporary storage; return its ``downloadUrl``, sealed.

    The return value (XCom ``return_value``) is what a job's ``inputUrl`` takes. The real
    ``downloadUrl`` is a signed URL, i.e. a credential, so it is returned *sealed*
    (``musicai-sealed:...``, encrypted with a key derived from the connection's API key): it stays
    out of Airflow's database and logs, and ``MusicAICreateJobOperator`` (the hook's ``create_job``)
    opens it again. Elsewhere, ``MusicAIHook().resolve_references(value)`` gives the URL back.

    :param source: a local path, a ``file://`` or fsspec URL (``s3://``, ``gs://``...), or an
        ``ObjectStoragePath`` (templated).
    :param content_type: MIME type sent with the file; guessed from the extension if None.
    :param musicai_conn_id: Airflow connection of type ``musicai``.
    """

    template_fields: Sequence[str] = ("source", "content_type", "musicai_conn_id")
    ui_color = "#e8d4f7"

    def __init__(self, *, source: Any, content_type: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.content_type = content_type

    def execute(self, context: Context) -> str:
        shown = redact_url(self.source) if isinstance(self.source, str) else str(self.source)
        self.log.info("Uploading %s to Music AI", shown)
        url = self.hook.upload_file(self.source, content_type=self.content_type)
        self._lineage_inputs = [self.source if isinstance(self.source, str) else str(self.source)]
        self.log.info("Uploaded %s; input URL: %s (returned sealed)", shown, redact_url(url))
        return self.hook.seal(url)


class MusicAICreateJobOperator(_MusicAIOperator):
    """Create a Music AI job and, by default, wait until it SUCCEEDED; return the job document.

    The job id is pushed to XCom (key ``job_id``) as soon as the job exists: ``stems.output["job_id"]``
    hands it to another task. When waiting, the return value is the final job document, and each
    result is pushed on its own (key ``result.<name>``), so ``stems.result("vocals")`` hands one
    result to the next task in plain Python, e.g.
    ``workflow_params={"inputUrl": stems.result("vocals")}``. In that document and those results,
    URL results are ``musicai-result://<job id>/<key>`` references rather than signed URLs
    (credentials that must not sit in XCom); the hook resolves them to fresh URLs when a job is
    created from them or results are downloaded. Without waiting the return value
    is the job id. A FAILED job raises ``MusicAIJobFailedError`` with the API's error code,
    title and message.

    Retries do not create duplicates: a retry reattaches to the job an earlier try created (or
    reuses its result if it SUCCEEDED), and creates a fresh job only if that one FAILED or is gone.
    See :mod:`airflow_provider_musicai.operators._reattach`.

    :param name: the job's name (templated).
    :param workflow: the workflow slug, e.g. ``music-ai/stems-vocals-accompaniment`` (templated).
    :param workflow_params: the workflow's input params, e.g. ``{"inputUrl": ...}`` (templated).
        Called ``params`` in the API; ``params`` is reserved by Airflow for DAG/task Params.
    :param metadata: flat ``{str: str | int | float | bool}`` metadata (templated). The task
        instance's identity (``airflowDagId``...) is added for tracing.
    :param wait_for_completion: wait until the job is SUCCEEDED or FAILED.
    :param deferrable: wait in the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``.
    :param poll_interval: seconds between two status requests.
    :param timeout: seconds (or a timedelta) to wait for the job; None waits as long as the task's
        ``execution_timeout`` allows. What happens to the job on timeout is ``on_timeout``'s call.
    :param on_timeout: the job of a wait that timed out (``timeout``, ``execution_timeout``, or
        Airflow's trigger timeout; deferred or not): ``"auto"`` (default) keeps it when Airflow will
        retry the task, so the retry reattaches, and deletes it on the last try, when nobody would
        wait for it; ``"keep"`` always keeps it; ``"delete"`` always deletes it. The task log says
        which and why (see :mod:`airflow_provider_musicai.operators._on_timeout`).
    :param delete_on_kill: delete the job when the task is killed (marked failed or success,
        cleared); a timeout is ``on_timeout``'s call.
    :param reattach: look for the job of an earlier try before creating one (see above).
    :param retry_on_bad_input: a job that FAILED with ``BAD_INPUT`` would fail again on the same
        input, so by default the task fails *without retries* (``MusicAIBadInputError``, an
        ``AirflowFailException``) instead of paying for another job; True retries it as usual.
    :param copy_results_to: have Music AI write outputs straight to your storage (``copyResultsTo``)
        instead of its temporary storage (templated): a mapping ``{output: destination}``, or a
        folder under which each of ``copy_outputs`` gets an object named after it. A destination is
        an ``s3://`` or ``gs://`` URL or an ``ObjectStoragePath`` (presigned at run time through the
        Amazon or Google provider: extras ``[amazon]``, ``[google]``), or a presigned ``https://``
        PUT URL. In the returned job document each copied output's value is its destination URI.
        When it is known at parse time and no ``outlets`` are given, its destinations become the
        task's outlets (Assets; Datasets on Airflow 2).
    :param copy_outputs: the output names to write under a ``copy_results_to`` folder (templated).
    :param storage_conn_id: the AWS/Google connection that presigns ``copy_results_to`` URLs that
        do not name one (``s3://conn_id@bucket/key`` and ``ObjectStoragePath`` do); default the
        provider's default connection (templated).
    :param musicai_conn_id: Airflow connection of type ``musicai``.

    The "Music AI job" button (operator extra link) opens the job's page when the connection has
    a ``job_url_template`` extra (see :mod:`airflow_provider_musicai.links`).
    """

    template_fields: Sequence[str] = (
        "name",
        "workflow",
        "workflow_params",
        "metadata",
        "copy_results_to",
        "copy_outputs",
        "storage_conn_id",
        "musicai_conn_id",
    )
    template_fields_renderers = {"workflow_params": "json", "metadata": "json"}
    ui_color = "#d4b0f0"
    operator_extra_links = (MusicAIJobLink(),)

    def __init__(
        self,
        *,
        name: str,
        workflow: str,
        workflow_params: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        timeout: float | timedelta | None = None,
        on_timeout: str = "auto",
        delete_on_kill: bool = True,
        reattach: bool = True,
        retry_on_bad_input: bool = False,
        copy_results_to: Any = None,
        copy_outputs: Sequence[str] | None = None,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        if workflow_params is None or (not workflow_params and kwargs.get("params")):
            _reject_missing_workflow_params(kwargs.get("params"))
        if copy_results_to is not None and "outlets" not in kwargs:
            kwargs["outlets"] = static_outlets(copy_results_to)
        super().__init__(**kwargs)
        self.copy_results_to = copy_results_to
        self.copy_outputs = copy_outputs
        self.storage_conn_id = storage_conn_id
        self.name = name
        self.workflow = workflow
        self.workflow_params: Mapping[str, Any] = workflow_params
        self.metadata = metadata
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.on_timeout = validate_on_timeout(on_timeout, f"{type(self).__name__} {self.task_id}")
        self._timeout_settled = False
        self.delete_on_kill = delete_on_kill
        self.reattach = reattach
        self.retry_on_bad_input = retry_on_bad_input
        self.job_id: str | None = None
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be > 0 seconds, got {poll_interval}")

    def result(self, key: str) -> XComArg:
        """One result of this task's job, for another task's arguments: ``stems.result("vocals")``.

        An ``XComArg`` (so it sets the dependency, survives DAG serialization, works with TaskFlow,
        ``.partial()``/``.expand()`` and mapped tasks: a mapped task's ``result()`` is one value per
        map index). URL results arrive as ``musicai-result://<job id>/<key>`` references, which the
        hook turns into fresh signed URLs only when it uses them (creating a job, downloading).
        Requires ``wait_for_completion=True``: only a finished job has results.
        """
        if not self.wait_for_completion:
            raise ValueError(
                f"{self.task_id}.result({key!r}): the task does not wait for its job "
                "(wait_for_completion=False), so it has no results to hand on"
            )
        return musicai_result(self, key)

    def execute(self, context: Context) -> Any:
        from airflow.providers.common.compat.sdk import AirflowTaskTimeout

        with (
            self._no_paid_retry_of_bad_input(),
            self._settle_on_timeout(context, MusicAITimeoutError, AirflowTaskTimeout),
        ):
            outcome = self._execute(context)
        return self._finish(context, outcome)

    def _finish(self, context: Context, outcome: Any) -> Any:
        """Show copied outputs by their destination URI, push each result for ``result()`` and put the
        job on the outlets' events."""
        copied = destinations(self._copy_targets)
        if isinstance(outcome, Mapping):
            outcome = self._push_results(context, with_destinations(outcome, self._copy_targets))
            if outcome.get("status") == "SUCCEEDED" and copied:
                report_hook_lineage(self.hook, outputs=copied.values())
        self._lineage_inputs = _result_references(self.workflow_params)
        self._lineage_outputs = list(copied.values())
        self._lineage_job = {"jobId": self.job_id, "workflow": self.workflow}
        extra = {"musicai_job_id": self.job_id, "workflow": self.workflow, "files": copied}
        record_asset_events(context, self.outlets, extra)
        return outcome

    def _execute(self, context: Context) -> Any:
        try:
            job = self._create_or_reattach(context)
        except BaseException:
            with suppress(Exception):  # the error that matters is the one raised
                push_job_link(context, self.hook, None)  # no job, no link (and no Airflow 3 error line)
            raise
        job_id = self._current_job_id()
        context["ti"].xcom_push(key="job_id", value=job_id)
        push_job_link(context, self.hook, job_id)
        if job is not None and job.get("status") == "SUCCEEDED":
            log_final_job(self.log, job)
            if not self.wait_for_completion:
                return self.job_id
            return public_job_document(job)
        if not self.wait_for_completion:
            return self.job_id
        deadline = wait_deadline(
            timeout=as_seconds(self.timeout),
            execution_timeout=self.execution_timeout,
            task_start=getattr(context["ti"], "start_date", None),
        )
        if self.deferrable:
            self._defer(deadline)
        return self._wait_here(deadline)

    @staticmethod
    def _push_results(context: Context, job: dict[str, Any]) -> dict[str, Any]:
        """Push each result of the (public) final document under ``result.<name>``, for ``result()``."""
        for key, value in (job.get("result") or {}).items():
            context["ti"].xcom_push(key=RESULT_XCOM_PREFIX + str(key), value=value)
        return job

    def _create_or_reattach(self, context: Context) -> dict[str, Any] | None:
        """Set ``self.job_id``; return the job document when an earlier try's job is reused."""
        identity = TaskIdentity.from_context(context)
        metadata = {**identity.metadata(), **dict(self.metadata or {})}
        if not self.reattach:
            key = generation_key(f"{identity.base_key}-try", identity.try_number)
            self.job_id = self.hook.create_job(
                self.name,
                self.workflow,
                self.workflow_params,
                metadata,
                idempotency_key=key,
                copy_results_to=self._copy_targets,
            )
            return None
        store = context.get("task_state_store")  # type: ignore[misc]  # Airflow 3.3+ only
        ledger = JobLedger(self.hook, identity, self.workflow, store, self.log)
        resolution = ledger.resolve()
        if resolution.job is not None:
            self.log.info("Music AI: %s", resolution.reason)
            self.job_id = resolution.existing_id
            return resolution.job
        if identity.try_number > 1 or resolution.generation > 0:
            self.log.info("Music AI: creating a new job: %s", resolution.reason)
        ledger.record(resolution, None)
        self.job_id = self.hook.create_job(
            self.name,
            self.workflow,
            self.workflow_params,
            metadata,
            idempotency_key=resolution.key,
            copy_results_to=self._copy_targets,
        )
        ledger.record(resolution, self.job_id)
        self.log.info("Music AI job %s created (workflow %s, name %r)", self.job_id, self.workflow, self.name)
        if resolution.superseded:
            self._delete_quietly(resolution.superseded, "it FAILED and was replaced by job " + self.job_id)
        return None

    def _current_job_id(self) -> str:
        """The job this task created or reattached to; a typed error (not an ``assert``, which
        ``python -O`` removes) if there is none yet."""
        if self.job_id is None:
            raise MusicAIError(f"Task {self.task_id}: no Music AI job was created or reattached to wait on")
        return self.job_id

    @cached_property
    def _copy_targets(self) -> dict[str, CopyTarget]:
        """``copy_results_to`` (rendered) parsed once a run: the hook presigns these targets, and
        ``_finish`` shows the same ones, so a task names exactly where the service wrote."""
        return copy_targets(self.copy_results_to, self.copy_outputs, self.storage_conn_id)

    def _defer(self, deadline: float | None) -> None:
        from airflow_provider_musicai.triggers.musicai import MusicAIJobTrigger

        job_id = self._current_job_id()
        self.log.info("Deferring until Music AI job %s finishes", job_id)
        self.defer(
            trigger=MusicAIJobTrigger(
                job_id=job_id,
                musicai_conn_id=self.musicai_conn_id,
                poll_interval=self.poll_interval,
                deadline=deadline,
                delete_on_kill=self.delete_on_kill,
                workflow=self.workflow,
            ),
            method_name="execute_complete",
            timeout=defer_timeout(deadline),
        )

    def _wait_here(self, deadline: float | None) -> dict[str, Any]:
        import time

        job_id = self._current_job_id()
        remaining = None if deadline is None else max(0.0, deadline - time.time())
        job = self.hook.wait_for_job(job_id, poll_interval=self.poll_interval, timeout=remaining)
        log_final_job(self.log, job)
        return public_job_document(job)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: return the final job document or raise its error."""
        if isinstance(event, Mapping) and event.get("job_id"):
            self.job_id = str(event["job_id"])
        with self._no_paid_retry_of_bad_input(), self._settle_on_timeout(context, MusicAITimeoutError):
            job = job_from_event(event)
        log_final_job(self.log, job)
        finished: dict[str, Any] = self._finish(context, job)
        return finished

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Airflow's own trigger timeout (no triggerer reported ours in time) fails the task here,
        before ``execute_complete``: settle the job (``on_timeout``) as any other timeout."""
        if not is_trigger_timeout(next_method, next_kwargs):
            return super().resume_execution(next_method, next_kwargs, context)
        if self.job_id is None:
            ti = context["ti"]
            pulled = ti.xcom_pull(task_ids=ti.task_id, key="job_id", map_indexes=getattr(ti, "map_index", -1))
            self.job_id = pulled if isinstance(pulled, str) and pulled else None
        with self._settle_on_timeout(context, Exception):
            return super().resume_execution(next_method, next_kwargs, context)

    @contextmanager
    def _settle_on_timeout(self, context: Context, *timeouts: type[BaseException]) -> Iterator[None]:
        """On a timeout (one of ``timeouts``), keep or delete the job as ``on_timeout`` says."""
        try:
            yield
        except timeouts:
            if self.job_id is not None and not self._timeout_settled:
                self._timeout_settled = True  # on_kill, which Airflow calls next, leaves the job alone
                self._settle_timed_out_job(context, self.job_id)
            raise

    def _settle_timed_out_job(self, context: Context, job_id: str) -> None:
        decision = decide(self.on_timeout, context["ti"], retries=self.retries or 0, reattach=self.reattach)
        if not decision.delete:
            self.log.info("Music AI job %s kept: %s", job_id, decision.reason)
            return
        try:
            self.hook.delete_job(job_id)
        except MusicAINotFoundError:
            self.log.info("Music AI job %s was already gone (%s)", job_id, decision.reason)
        except MusicAIError as exc:
            self.log.warning("Music AI job %s could not be deleted (%s): %s", job_id, decision.reason, exc)
        else:
            self.log.info("Music AI job %s deleted: %s", job_id, decision.reason)
            metrics.job_deleted("timeout")

    @contextmanager
    def _no_paid_retry_of_bad_input(self) -> Iterator[None]:
        """Turn a ``BAD_INPUT`` failure into ``MusicAIBadInputError`` (no retry) unless
        ``retry_on_bad_input``: retrying would only pay for another job that fails the same way."""
        try:
            yield
        except MusicAIJobFailedError as exc:
            if exc.code != "BAD_INPUT" or self.retry_on_bad_input or isinstance(exc, MusicAIBadInputError):
                raise
            self.log.error("Music AI job %s FAILED with BAD_INPUT: failing without retries", exc.job_id)
            raise MusicAIBadInputError(exc.job_id, exc.code, exc.title, exc.error_message) from exc

    def on_kill(self) -> None:
        """Delete the job when the task is killed while it waits on a worker (after an
        ``execution_timeout``, ``on_timeout`` has decided already)."""
        if self._timeout_settled:
            return
        if self.delete_on_kill and self.job_id and self._delete_quietly(self.job_id, "the task was killed"):
            metrics.job_deleted("kill")


def _reject_missing_workflow_params(params: Any) -> NoReturn:
    """Fail clearly when no ``workflow_params`` were given, above all when ``params`` were meant."""
    if params:
        raise TypeError(
            "MusicAICreateJobOperator got params= but no workflow_params=: the job's input params "
            f"(e.g. {{'inputUrl': ...}}) go in workflow_params; params ({', '.join(map(str, params))}) "
            "is reserved by Airflow for DAG/task Params"
        )
    raise TypeError("MusicAICreateJobOperator needs workflow_params=, the job's input params (e.g. inputUrl)")


class MusicAIDeleteJobOperator(_MusicAIOperator):
    """Delete one or more Music AI jobs. A job that is already gone is a warning, not a failure.

    :param job_id: a job id, a job document (what ``MusicAICreateJobOperator`` returns), or a list of
        them, e.g. the output of a mapped task (templated). ``None`` entries (no job was created)
        are skipped.
    :param musicai_conn_id: Airflow connection of type ``musicai``.
    :return: the ids that were deleted.
    """

    template_fields: Sequence[str] = ("job_id", "musicai_conn_id")
    ui_color = "#f0d0d8"

    def __init__(self, *, job_id: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id

    def execute(self, context: Context) -> list[str]:

        deleted: list[str] = []
        for job_id in job_ids_of(self.job_id):
            if job_id is None:
                self.log.info("Skipping an empty job id (no job was created)")
                continue
            if job_id in deleted:
                continue
            if not self.hook.delete_job_if_exists(job_id):
                self.log.warning("Music AI job %s does not exist (already deleted?); nothing to do", job_id)
                continue
            deleted.append(job_id)
        self.log.info("Deleted %d Music AI job(s): %s", len(deleted), ", ".join(deleted) or "none")
        return deleted


class MusicAIDownloadResultsOperator(_MusicAIOperator):
    """Download a SUCCEEDED job's result files into a local folder or an ``ObjectStoragePath``.

    URL-valued results become files named after their key (``vocals.wav``); other values (a key, a
    bpm) go to ``result.json``. Outputs Music AI wrote to custom storage (``copy_results_to``) are
    skipped. Asset outlets (Datasets on Airflow 2) get an event whose extra holds the job id and the
    files written.

    :param job_id: a job id or a job document (templated).
    :param destination: a local folder, an fsspec URL or an ``ObjectStoragePath`` (templated).
    :param overwrite: replace files of the same name (logged; a symbolic link is replaced itself,
        never followed), or, when false, fail naming the file before downloading anything
        (templated: a rendered ``"False"`` means false).
    :param musicai_conn_id: Airflow connection of type ``musicai``.
    :return: ``{result name: written path}``.
    """

    template_fields: Sequence[str] = ("job_id", "destination", "overwrite", "musicai_conn_id")
    ui_color = "#c9e7d3"

    def __init__(self, *, job_id: Any, destination: Any, overwrite: bool | str = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.destination = destination
        self.overwrite = overwrite

    def execute(self, context: Context) -> dict[str, str]:
        # Always by id: the job is read again, so its signed result URLs are fresh even when the
        # document passed in (e.g. from XCom) is hours old.
        job_id = job_id_of(self.job_id)
        written = self.hook.download_results(job_id, self.destination, overwrite=self.overwrite)
        self.log.info(
            "Downloaded %d result(s) of Music AI job %s to %s: %s",
            len(written),
            job_id,
            self.destination,
            ", ".join(f"{key} -> {path}" for key, path in sorted(written.items())) or "none",
        )

        files = {key: str(path) for key, path in written.items()}
        self._lineage_inputs = [f"musicai-result://{job_id}/{key}" for key in files]
        self._lineage_outputs = list(dict.fromkeys(files.values()))
        self._lineage_job = {"jobId": job_id}
        record_asset_events(context, self.outlets, {"musicai_job_id": job_id, "files": files})
        return files


def _result_references(value: Any) -> list[str]:
    """Every ``musicai-result://`` reference (an earlier job's output) in a job's params."""
    if isinstance(value, str):
        return [value] if value.startswith("musicai-result://") else []
    if isinstance(value, Mapping):
        return [ref for inner in value.values() for ref in _result_references(inner)]
    if isinstance(value, (list, tuple)):
        return [ref for inner in value for ref in _result_references(inner)]
    return []
