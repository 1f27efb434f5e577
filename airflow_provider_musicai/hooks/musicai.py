"""MusicAIHook: every authenticated call to the Music AI API, sync (requests) and async (httpx2)."""

from __future__ import annotations

import importlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_musicai import metrics, references
from airflow_provider_musicai.copy_results import copy_targets
from airflow_provider_musicai.defaults import DEFAULT_CONN_ID
from airflow_provider_musicai.exceptions import (
    MusicAIAuthError,
    MusicAIConfigurationError,
    MusicAIError,
    MusicAIInvalidRequestError,
    MusicAILookupFailedError,
    MusicAIMalformedResponseError,
    MusicAINotFoundError,
    MusicAIResponseTooLargeError,
    MusicAITimeoutError,
    is_transient,
)
from airflow_provider_musicai.hooks import _api
from airflow_provider_musicai.hooks._api import ApiRequest, build_request
from airflow_provider_musicai.hooks._calls import Lookup, call_plan, run_async, run_sync
from airflow_provider_musicai.hooks._config import ConnectionConfig
from airflow_provider_musicai.hooks._diagnosis import failure_verdict, for_a_test, success_verdict
from airflow_provider_musicai.hooks._paging import Listing, ServedSizes
from airflow_provider_musicai.hooks._presign import presign_all
from airflow_provider_musicai.hooks._results import download_results
from airflow_provider_musicai.hooks._sources import guess_content_type, resolve_source
from airflow_provider_musicai.hooks._storage import StorageClient
from airflow_provider_musicai.hooks._transport import AsyncTransport, SyncTransport, new_session
from airflow_provider_musicai.jobs import (
    ACTIVE_STATUSES,
    IDEMPOTENCY_METADATA_KEY,
    KNOWN_STATUSES,
    TERMINAL_STATUSES,
    JobStatus,
    listed_as_asked,
    raise_if_failed,
    validate_metadata,
)
from airflow_provider_musicai.lineage import report_hook_lineage
from airflow_provider_musicai.redaction import install_log_redaction, printable, redact_url
from airflow_provider_musicai.status_log import StatusLog

if TYPE_CHECKING:
    import requests

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "JobStatus",
    "MusicAIHook",
    "raise_if_failed",
    "redact_url",
]

T = TypeVar("T")

install_log_redaction()

MAX_PAGE_SIZE = 100


class MusicAIHook(BaseHook):
    """Talks to the Music AI REST API with the key of an Airflow connection of type ``musicai``.

    The connection's password is the API key; its host, optional, is the API base URL
    (default ``https://api.music.ai/v1``). Extras tune timeouts and retries. Calls that fail
    transiently (no answer, 429, 5xx) are retried with backoff; 400/401/404/422 never are.

    :param musicai_conn_id: the Airflow connection to use.
    """

    conn_name_attr = "musicai_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "musicai"
    hook_name = "Music AI"
    #: Level of the line each file or job gets (uploaded, job created or deleted, result written).
    #: INFO suits a task with a few jobs; the catalog operator sets DEBUG and logs a line per
    #: batch instead, so a 100,000-track run does not write hundreds of thousands of lines.
    item_log_level: int = logging.INFO

    def __init__(self, musicai_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.musicai_conn_id = musicai_conn_id
        self._config: ConnectionConfig | None = None
        self._served_sizes: ServedSizes = {}

    # -- connection -------------------------------------------------------------------------

    @staticmethod
    def get_ui_field_behaviour() -> dict[str, Any]:
        """Connection form for Airflow versions that do not read ``conn-fields`` from provider info."""
        from airflow_provider_musicai.get_provider_info import UI_FIELD_BEHAVIOUR

        return dict(UI_FIELD_BEHAVIOUR)

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields (timeouts, retries) for the connection form of Airflow 2.x and 3.0/3.1."""
        try:
            from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
            from flask_babel import lazy_gettext
            from wtforms import BooleanField, IntegerField, StringField
            from wtforms.validators import NumberRange, Optional
        except ImportError:
            return {}
        from airflow_provider_musicai.get_provider_info import default_text, form_fields

        # Airflow's form supports only Integer/String/Password/Boolean fields: seconds are strings,
        # parsed (and validated with a clear error) by ConnectionConfig. Fields start empty, their
        # default as placeholder: an empty field is not saved, so a later release's default applies.
        widgets: dict[str, Any] = {}
        for name, spec in form_fields().items():
            schema = spec["schema"]
            description = lazy_gettext(spec.get("description", ""))
            if "boolean" in schema["type"]:  # a checkbox has no empty state: it keeps its default
                widgets[name] = BooleanField(
                    lazy_gettext(spec["label"]), default=schema.get("default"), description=description
                )
                continue
            placeholder = {"placeholder": default_text(name) or ""}
            if "integer" in schema["type"]:
                widgets[name] = IntegerField(
                    lazy_gettext(spec["label"]),
                    widget=BS3TextFieldWidget(),
                    validators=[Optional(), NumberRange(min=schema.get("minimum", 0))],
                    description=description,
                    render_kw=placeholder,
                )
            else:
                widgets[name] = StringField(
                    lazy_gettext(spec["label"]),
                    widget=BS3TextFieldWidget(),
                    description=description,
                    render_kw=placeholder,
                )
        return widgets

    @property
    def config(self) -> ConnectionConfig:
        """The parsed connection; fetched once per hook."""
        if self._config is None:
            self._config = self._config_from(self.get_connection(self.musicai_conn_id))
        return self._config

    async def aconfig(self) -> ConnectionConfig:
        """The parsed connection, fetched without blocking the event loop (triggerer)."""
        if self._config is None:
            getter = getattr(BaseHook, "aget_connection", None)
            if getter is not None:
                connection = await getter(self.musicai_conn_id)
            else:  # Airflow 2.x
                from asgiref.sync import sync_to_async

                connection = await sync_to_async(self.get_connection)(self.musicai_conn_id)
            self._config = self._config_from(connection)
        return self._config

    def _config_from(self, connection: Any) -> ConnectionConfig:
        config = ConnectionConfig.from_connection(
            conn_id=self.musicai_conn_id,
            host=connection.host,
            password=connection.password,
            port=connection.port,
            schema=connection.schema,
            extra=connection.extra,
        )
        _mask_secret(config.api_key)
        return config

    def test_connection(self) -> tuple[bool, str]:
        """Used by ``airflow connections test`` and the UI: calls ``GET /application`` once.

        A test must answer fast, so it makes a single attempt with short timeouts (a retry storm
        would only delay the verdict), and names the likely mistake when it fails.
        """
        try:
            application = self._call(build_request(_api.GET_APPLICATION), for_a_test(self.config))
        except MusicAIError as exc:
            return False, failure_verdict(exc, self._config)
        return True, success_verdict(application)

    # -- plumbing ---------------------------------------------------------------------------

    @cached_property
    def _session(self) -> requests.Session:
        return new_session(tls_verify=self.config.tls_verify)

    @cached_property
    def storage(self) -> StorageClient:
        """Client for signed storage URLs: a separate session that never carries the API key."""
        return StorageClient(self.config, new_session(tls_verify=self.config.tls_verify))

    def _log_item(self, message: str, *args: Any) -> None:
        """One file's or job's line, at :attr:`item_log_level`."""
        self.log.log(self.item_log_level, message, *args)

    def _call(
        self,
        request: ApiRequest[T],
        config: ConnectionConfig | None = None,
        *,
        lookup: Lookup | None = None,
    ) -> T:
        """Carry out ``request`` by the one retry plan (``lookup``: see :func:`call_plan`)."""
        config = config or self.config
        config.check_transport_security()
        return run_sync(
            call_plan(request, config.retry, lookup=lookup), SyncTransport(config, self._session).send
        )

    async def _acall(self, request: ApiRequest[T]) -> T:
        config = await self.aconfig()
        config.check_transport_security()
        return await run_async(call_plan(request, config.retry), AsyncTransport(config).send)

    def close(self) -> None:
        """Release pooled connections (safe to call more than once)."""
        for name in ("_session",):
            session = self.__dict__.pop(name, None)
            if session is not None:
                session.close()
        storage = self.__dict__.pop("storage", None)
        if storage is not None:
            storage.close()

    # -- applications, uploads --------------------------------------------------------------

    def get_application(self) -> dict[str, Any]:
        """``GET /application``: the application ``{id, name}`` that owns the API key."""
        return self._call(build_request(_api.GET_APPLICATION))

    async def aget_application(self) -> dict[str, Any]:
        """Async ``GET /application``."""
        return await self._acall(build_request(_api.GET_APPLICATION))

    def get_upload_url(self) -> dict[str, str]:
        """``GET /upload``: a fresh pair of signed ``{uploadUrl, downloadUrl}``."""
        return self._call(build_request(_api.GET_UPLOAD_URL))

    def upload_file(self, source: Any, content_type: str | None = None) -> str:
        """Stream ``source`` to Music AI's temporary storage; return its ``downloadUrl``.

        ``source`` is a local path, a ``file://`` or fsspec URL (``s3://``, ``gs://``...), an
        ``ObjectStoragePath`` or a binary file object. It is sent with an exact ``Content-Length``
        in 1 MiB blocks, whatever its size. A failed PUT starts again with a fresh signed URL.
        Missing, unreadable or empty sources raise :class:`MusicAIInputError` before any request.
        """
        opened = resolve_source(source)
        try:
            url = self.storage.upload(
                opened,
                content_type or guess_content_type(opened.filename),
                self.get_upload_url,
                log_level=self.item_log_level,
            )
        finally:
            opened.cleanup()
        if isinstance(source, str) or hasattr(source, "protocol"):
            report_hook_lineage(self, inputs=[source if isinstance(source, str) else str(source)])
        return url

    # -- jobs -------------------------------------------------------------------------------

    def create_job(
        self,
        name: str,
        workflow: str,
        params: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        copy_results_to: Any = None,
        copy_outputs: Sequence[str] | None = None,
        storage_conn_id: str | None = None,
    ) -> str:
        """``POST /job``: start ``workflow`` on ``params``; return the new job's id.

        ``copy_results_to`` has the service write outputs straight to the user's storage
        (``copyResultsTo``): a mapping ``{output: destination}`` or a folder under which each of
        ``copy_outputs`` gets an object named after it. Destinations are ``s3://``/``gs://`` URLs or
        ``ObjectStoragePath`` (presigned here through the Amazon/Google provider, with the path's
        connection or ``storage_conn_id``), or presigned ``https://`` URLs. See
        :func:`airflow_provider_musicai.copy_results.copy_targets`.

        ``params`` may hold references that tasks pass through XCom instead of signed URLs
        (``musicai-result://<job>/<key>``, ``musicai-sealed:...``): they are resolved to fresh URLs
        first (see :mod:`airflow_provider_musicai.references`).

        The request carries ``idempotency_key`` (a fresh UUID if not given) in the job's metadata.
        If an answer is lost (timeout, dropped connection, 5xx), the hook looks the key up before
        sending again, so one call never creates two jobs. Pass a stable key (the operators derive
        one from the task instance) to make retries of a whole task reattach as well.
        """
        body = self._job_body(name, workflow, params, metadata)
        body["params"] = self.resolve_references(body["params"])
        targets = copy_targets(copy_results_to, copy_outputs, storage_conn_id)
        if targets:
            body["copyResultsTo"] = presign_all(targets)
            self._log_item("Music AI will write %s", ", ".join(f"{o} -> {t.uri}" for o, t in targets.items()))
        key = idempotency_key or uuid.uuid4().hex
        body["metadata"][IDEMPOTENCY_METADATA_KEY] = key

        def find() -> str | None:
            existing = self.find_job_by_idempotency_key(key, workflow=workflow)
            return None if existing is None else str(existing["id"])

        try:
            job_id = self._call(
                build_request(_api.CREATE_JOB, json_body=body),
                lookup=Lookup("checking whether the job exists", find),
            )
        except MusicAILookupFailedError as failed:
            raise MusicAIError(
                f"{failed.cause} Whether the job was created could not be checked ({failed.lookup_error}); "
                "not sending again to avoid a duplicate job. "
                f"Look for a job whose metadata has {IDEMPOTENCY_METADATA_KEY}={key}."
            ) from None
        except (MusicAIMalformedResponseError, MusicAIResponseTooLargeError) as unusable:
            # A 2xx whose id cannot be used: the job may well exist, so never send again blindly.
            raise MusicAIMalformedResponseError(
                f"The job MAY have been created, but the answer cannot be used ({unusable.hint}). "
                f"Not sending it again, to avoid a duplicate job: look for a job whose metadata has "
                f"{IDEMPOTENCY_METADATA_KEY}={key}.",
                status_code=unusable.status_code,
                endpoint=_api.CREATE_JOB.label,
                api_message=unusable.api_message,
            ) from None
        self._log_item("Created Music AI job %s (%s, workflow %s)", job_id, name, workflow)
        metrics.job_created()
        return job_id

    @staticmethod
    def _job_body(
        name: str, workflow: str, params: Mapping[str, Any], metadata: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        if not isinstance(name, str) or not name.strip():
            raise MusicAIConfigurationError("Job name must be a non-empty string")
        if not isinstance(workflow, str) or not workflow.strip():
            raise MusicAIConfigurationError("Job workflow must be a non-empty workflow slug")
        if not isinstance(params, Mapping):
            raise MusicAIConfigurationError(
                f"Job params must be a mapping (e.g. {{'inputUrl': ...}}), got {type(params).__name__}"
            )
        try:
            json.dumps(params)
        except (TypeError, ValueError) as exc:
            raise MusicAIConfigurationError(f"Job params must be JSON-serializable: {exc}") from None
        return {
            "name": name,
            "workflow": workflow,
            "params": dict(params),
            "metadata": validate_metadata(metadata),
        }

    def seal(self, url: str) -> str:
        """Encrypt a signed URL with this connection's key so it can pass through XCom."""
        return references.seal(url, self.config.api_key)

    def resolve_references(self, value: Any) -> Any:
        """``value`` with every result reference and sealed URL replaced by a usable URL."""
        return references.resolve_references(value, self.config.api_key, self.get_job)

    def find_job_by_idempotency_key(self, key: str, workflow: str | None = None) -> dict[str, Any] | None:
        """The job of ``workflow`` whose metadata carries ``key`` (see :meth:`create_job`), or None."""
        return next((job for job_key, job in self.iter_keyed_jobs(workflow) if job_key == key), None)

    def iter_keyed_jobs(self, workflow: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(idempotency key, job)`` for each job of ``workflow`` created with a key (see
        :meth:`create_job`): one pass over the listing, the job's own workflow deciding, not the
        listing's filter. The one scan behind every reattachment."""
        for job in self.list_jobs(workflow=workflow):
            metadata = job.get("metadata")
            key = metadata.get(IDEMPOTENCY_METADATA_KEY) if isinstance(metadata, Mapping) else None
            if isinstance(key, str) and listed_as_asked(job, workflow=workflow):
                yield key, job

    def get_job(self, job_id: str) -> dict[str, Any]:
        """``GET /job/:id``: the job document."""
        return self._call(build_request(_api.GET_JOB, job_id=job_id))

    async def aget_job(self, job_id: str) -> dict[str, Any]:
        """Async ``GET /job/:id``."""
        return await self._acall(build_request(_api.GET_JOB, job_id=job_id))

    def get_job_status(self, job_id: str) -> str:
        """``GET /job/:id/status``: the job's status string."""
        return self._call(build_request(_api.GET_JOB_STATUS, job_id=job_id))

    async def aget_job_status(self, job_id: str) -> str:
        """Async ``GET /job/:id/status``."""
        return await self._acall(build_request(_api.GET_JOB_STATUS, job_id=job_id))

    def delete_job(self, job_id: str) -> None:
        """``DELETE /job/:id``. Raises :class:`MusicAINotFoundError` if the job does not exist."""
        self._call(build_request(_api.DELETE_JOB, job_id=job_id))
        self._log_item("Deleted Music AI job %s", job_id)

    async def adelete_job(self, job_id: str) -> None:
        """Async ``DELETE /job/:id``."""
        await self._acall(build_request(_api.DELETE_JOB, job_id=job_id))
        self._log_item("Deleted Music AI job %s", job_id)

    def delete_job_if_exists(self, job_id: str) -> bool:
        """``DELETE /job/:id`` where a job already gone is no error: whether this call deleted it."""
        try:
            self.delete_job(job_id)
        except MusicAINotFoundError:
            return False
        return True

    async def adelete_job_if_exists(self, job_id: str) -> bool:
        """Async :meth:`delete_job_if_exists`."""
        try:
            await self.adelete_job(job_id)
        except MusicAINotFoundError:
            return False
        return True

    def list_jobs(
        self,
        status: str | Iterable[str] | None = None,
        workflow: str | Iterable[str] | None = None,
        batch_name: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """``GET /job``, every page, lazily: one request per ``page_size`` jobs, memory flat.

        ``status`` and ``workflow`` take one value or several (sent as repeated parameters). A
        server that silently serves smaller pages than asked loses no job (see ``hooks/_paging.py``);
        one that repeats a page, or a listing longer than the connection's ``max_pages``, raises
        :class:`~airflow_provider_musicai.exceptions.MusicAIPagingError`.
        """
        query = _job_filters(status, workflow, batch_name)
        for page in self._pages(_api.LIST_JOBS, query, page_size):
            yield from page

    async def alist_jobs(
        self,
        status: str | Iterable[str] | None = None,
        workflow: str | Iterable[str] | None = None,
        batch_name: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[dict[str, Any]]:
        """Async :meth:`list_jobs`."""
        async for page in self.alist_job_pages(status, workflow, batch_name, page_size):
            for item in page:
                yield item

    async def alist_job_pages(
        self,
        status: str | Iterable[str] | None = None,
        workflow: str | Iterable[str] | None = None,
        batch_name: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Async ``GET /job`` one page (one request) at a time: for callers that count requests."""
        query = _job_filters(status, workflow, batch_name)
        async for page in self._apages(_api.LIST_JOBS, query, page_size):
            yield page

    def list_workflows(self, page_size: int = MAX_PAGE_SIZE) -> Iterator[dict[str, Any]]:
        """``GET /workflow``, every page, lazily."""
        for page in self._pages(_api.LIST_WORKFLOWS, [], page_size):
            yield from page

    async def alist_workflows(self, page_size: int = MAX_PAGE_SIZE) -> AsyncIterator[dict[str, Any]]:
        """Async :meth:`list_workflows`."""
        async for page in self._apages(_api.LIST_WORKFLOWS, [], page_size):
            for item in page:
                yield item

    def _pages(
        self, endpoint: _api.Endpoint[list[dict[str, Any]]], query: list[tuple[str, Any]], page_size: int
    ) -> Iterator[list[dict[str, Any]]]:
        """Every page of a listing, by the one paging rule of :mod:`._paging`."""
        listing = _listing(endpoint, query, page_size, self.config, self._served_sizes)
        while (request := listing.next_request()) is not None:
            yield listing.accept(self._call(request))

    async def _apages(
        self, endpoint: _api.Endpoint[list[dict[str, Any]]], query: list[tuple[str, Any]], page_size: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Async :meth:`_pages`: one request per page."""
        listing = _listing(endpoint, query, page_size, await self.aconfig(), self._served_sizes)
        while (request := listing.next_request()) is not None:
            yield listing.accept(await self._acall(request))

    # -- waiting and results ----------------------------------------------------------------

    def wait_for_job(
        self, job_id: str, poll_interval: float = 10.0, timeout: float | None = None
    ) -> dict[str, Any]:
        """Poll until the job SUCCEEDED or FAILED; return its final document.

        Transient errors (no answer, 429, 5xx after the call's own retries) are logged and polled
        again; 401/404 end the wait. Unknown statuses are logged and treated as still running.

        :raises MusicAIJobFailedError: the job FAILED (with the API's code, title and message).
        :raises MusicAITimeoutError: ``timeout`` seconds passed first.
        """
        _api.validate_job_id(job_id)
        if poll_interval <= 0:
            raise MusicAIConfigurationError(f"poll_interval must be > 0 seconds, got {poll_interval}")
        deadline = None if timeout is None else time.monotonic() + timeout
        tracker = StatusLog(job_id, self.log)
        while True:
            try:
                status = self.get_job_status(job_id)
            except MusicAIError as error:
                if not is_transient(error):
                    raise
                self.log.warning("Could not read the status of job %s (%s); will poll again", job_id, error)
            else:
                tracker.observe(status)
                if status in TERMINAL_STATUSES:
                    job = self.get_job(job_id)
                    if job.get("status") in TERMINAL_STATUSES:
                        metrics.job_finished(job)
                        raise_if_failed(job)
                        return job
                    # The status endpoint and the document disagree (a lagging replica or cache):
                    # only a final document ends the wait, so poll again.
                    self.log.warning(
                        "Music AI job %s: the status endpoint says %s but the job document says %r; "
                        "will poll again",
                        job_id,
                        status,
                        job.get("status"),
                    )
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise MusicAITimeoutError(
                    f"Music AI job {job_id} did not finish within {timeout}s (last status: "
                    f"{printable(tracker.last or 'unknown')})",
                    job_id=job_id,
                    last_status=tracker.last,
                )
            # The last poll happens at the deadline, not one interval before it.
            time.sleep(poll_interval if remaining is None else min(poll_interval, remaining))

    def download_results(
        self, job_or_id: str | Mapping[str, Any], destination: Any, *, overwrite: bool | str = True
    ) -> dict[str, str]:
        """Stream every URL-valued result of a SUCCEEDED job into ``destination``.

        ``destination`` is a local folder, an fsspec URL or an ``ObjectStoragePath``. Files are
        named after their result key with the URL's extension (``vocals.wav``), made safe so no key
        can escape the folder, and written atomically. Non-URL values (a key, a bpm) go to
        ``result.json`` (strict JSON: NaN and Infinity become strings). A file of the same name is
        replaced (logged) when ``overwrite`` is true, and with ``overwrite=False`` makes the call
        fail naming it before anything is downloaded; a symbolic link of that name is replaced
        itself, never followed. Outputs written to custom storage (``copy_results_to``, value
        ``[custom storage]``) are skipped. Returns ``{result name: written path}``.
        """
        return download_results(self, job_or_id, destination, overwrite=overwrite)


def _listing(
    endpoint: _api.Endpoint[list[T]],
    query: list[tuple[str, Any]],
    page_size: int,
    config: ConnectionConfig,
    served: ServedSizes,
) -> Listing[T]:
    if not isinstance(page_size, int) or isinstance(page_size, bool) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise MusicAIConfigurationError(
            f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}, got {page_size!r}"
        )
    return Listing(endpoint, query, page_size, max_pages=config.max_pages, served=served)


def _job_filters(
    status: str | Iterable[str] | None, workflow: str | Iterable[str] | None, batch_name: str | None
) -> list[tuple[str, Any]]:
    statuses = [status] if isinstance(status, str) else list(status or [])
    unknown = [value for value in statuses if value not in KNOWN_STATUSES]
    if unknown:
        raise MusicAIConfigurationError(
            f"Unknown job status filter {unknown[0]!r}: use {', '.join(sorted(KNOWN_STATUSES))}"
        )
    workflows = [workflow] if isinstance(workflow, str) else list(workflow or [])
    return [("status", statuses), ("workflow", workflows), ("batchName", batch_name)]


#: Where each Airflow defines ``mask_secret``, newest first: common-compat exports it only from
#: 1.22, and older ones (Airflow 3.1 and 3.2's constraints pin them) must still mask the key.
_MASK_SECRET_MODULES = (
    "airflow.providers.common.compat.sdk",
    "airflow.sdk.log",
    "airflow.sdk.execution_time.secrets_masker",
    "airflow.utils.log.secrets_masker",
)


def _mask_secret(secret: str) -> None:
    """Register the key with Airflow's secrets masker so it never shows in task logs."""
    for module_name in _MASK_SECRET_MODULES:
        try:
            mask_secret = importlib.import_module(module_name).mask_secret
        except (ImportError, AttributeError):
            continue
        mask_secret(secret)
        return
    raise RuntimeError("no mask_secret in this Airflow: the API key cannot be kept out of task logs")


# Re-exported for callers that classify errors themselves (triggers, sensors).
__all__ += ["MusicAIAuthError", "MusicAIInvalidRequestError", "MusicAINotFoundError", "is_transient"]
