"""Background job processing: fetch the input, run the workflow, record the outcome.

Input fetching rules (what a real service would observe, without ever leaving loopback):

* the emulator's own storage URLs are read from the blob store directly, after the same signature and
  expiry checks as the storage listener: a refused URL (bad signature, expired, signed for PUT) or a
  missing object ends ``BAD_INPUT`` (the storage answered, the file is not available);
* other ``http(s)`` URLs on a loopback host (``127.0.0.0/8``, ``::1``, ``localhost``) are fetched with
  ``input_timeout_seconds``; no answer (refused, reset, timeout) ends ``TIMEOUT``, a non-2xx answer or a
  short body ends ``BAD_INPUT``. Redirects are not followed (``BAD_INPUT``);
* any other host ends ``TIMEOUT`` without connecting (no DNS lookup either); other schemes end ``BAD_INPUT``;
* except URLs of the input-file map (``input_files``: exact URL -> local file), read from disk, so that
  documentation examples such as ``https://music.ai/demo.ogg`` run offline unchanged.
"""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import logging
import math
import ssl
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, urlsplit

from .catalog import WorkflowCatalog
from .clock import Clock
from .faults import JOB_ERROR_TITLES
from .state import EmulatorConfig, Job, JobError
from .storage import STORAGE_PREFIX, BlobStore, SignatureError, UrlSigner, discard
from .workflows import BadInputError, open_input

logger = logging.getLogger(__name__)
#: The value of an output copied to ``copyResultsTo`` (musicai-sdk README, "Custom storage").
CUSTOM_STORAGE = "[custom storage]"
_CHUNK = 1 << 20


class JobFailure(Exception):
    """Processing ended with an API error code (BAD_INPUT, TIMEOUT, INTERNAL_ERROR)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def to_error(self) -> JobError:
        """The job's ``error`` object."""
        return JobError(self.code, JOB_ERROR_TITLES[self.code], str(self))


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is a loopback literal or ``localhost`` (never resolved through DNS)."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Sink:
    """Writes result files into the blob store and signs their download URLs (remembering each file)."""

    def __init__(self, store: BlobStore, signer: UrlSigner, ttl: float, generation: int) -> None:
        self._store, self._signer, self._ttl, self._generation = store, signer, ttl, generation
        self.files: dict[str, tuple[Path, str]] = {}

    def add_file(self, filename: str, content_type: str, write: Callable[[BinaryIO], None]) -> str:
        key = self._store.new_key(filename)
        tmp = self._store.temp_path()
        try:
            with tmp.open("w+b") as out:
                write(out)
        except BaseException:
            discard(tmp)
            raise
        blob = self._store.commit(tmp, key, content_type, self._generation)
        url = self._signer.sign_url("GET", key, self._ttl)
        if blob is not None:
            self.files[url] = (blob.path, content_type)
        return url


class JobRunner:
    """Admits each job when it is due and its application has a free slot, and processes it on a pool.

    Admission and slot release run on the event loop through the :class:`~.clock.Clock`; processing runs
    in worker threads. ``max_concurrent_jobs`` counts an application's STARTED jobs: a job is due
    ``queued_seconds`` after creation and waits (QUEUED) in creation order while the limit is reached.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        store: BlobStore,
        signer: UrlSigner,
        config: EmulatorConfig,
        storage_address: tuple[str, int],
        clock: Clock,
        workflows: WorkflowCatalog,
        input_file: Callable[[str], Path | None] = lambda url: None,
        own_ports: frozenset[int] = frozenset(),
        workers: int = 8,
    ) -> None:
        self._loop = loop
        self._store = store
        self._signer = signer
        self._config = config
        self._clock = clock
        self._workflows = workflows
        self._input_file = input_file
        self._own_ports = own_ports or frozenset({storage_address[1]})
        self._storage_host, self._storage_port = storage_address
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="musicai-emulator-job")
        self._closed = threading.Event()
        self._running: dict[str, set[Job]] = {}
        self._waiting: dict[str, deque[Job]] = {}

    def schedule(self, job: Job) -> None:
        """Arrange for ``job`` to be admitted once it is due (call from the event loop)."""
        self._clock.call_at(job.ready_at, lambda: self._due(job))

    def _due(self, job: Job) -> None:
        if not job.cancelled and job.start_at == math.inf:
            self._waiting.setdefault(job.app.id, deque()).append(job)
            self._pump(job.app.id)

    def _pump(self, app_id: str) -> None:
        """Admit waiting jobs of ``app_id`` while it has free slots."""
        waiting, running = self._waiting.get(app_id), self._running.setdefault(app_id, set())
        limit = self._config.max_concurrent_jobs
        while waiting and (not limit or len(running) < limit):
            job = waiting.popleft()
            if job.cancelled:
                continue
            job.admit(self._clock.now())
            running.add(job)
            if not self._closed.is_set():
                self._pool.submit(self._process_and_release, job)

    def complete_now(self, job: Job) -> None:
        """Skip the rest of ``job``'s queueing and processing time (admitted now even over the limit);
        it is final as soon as its processing has produced an outcome (call from the event loop)."""
        if job.cancelled or (job.outcome_at is not None and job.done_at <= self._clock.now()):
            return
        now = self._clock.now()
        if job.start_at == math.inf:
            waiting = self._waiting.get(job.app.id)
            if waiting is not None and job in waiting:
                waiting.remove(job)
            job.admit(now)
            self._running.setdefault(job.app.id, set()).add(job)
            if not self._closed.is_set():
                self._pool.submit(self._process_and_release, job)
        job.done_at = min(job.done_at, now)
        if job.outcome_at is not None:
            self.release(job)

    def pump_all(self) -> None:
        """Admit what a raised ``max_concurrent_jobs`` now allows (call from the event loop)."""
        for app_id in list(self._waiting):
            self._pump(app_id)

    def _process_and_release(self, job: Job) -> None:
        try:
            self.process(job)
        finally:
            self._clock.call_at_threadsafe(job.done_at, lambda: self.release(job))

    def release(self, job: Job) -> None:
        """Free ``job``'s slot (finished or deleted) and admit the next waiting job (event loop)."""
        running = self._running.get(job.app.id)
        if running is not None and job in running:
            running.discard(job)
            self._pump(job.app.id)

    def reset(self) -> None:
        """Forget every waiting and running job (they were cancelled by the job store)."""
        self._running.clear()
        self._waiting.clear()

    def close(self) -> None:
        """Stop accepting work; running jobs finish in the background."""
        self._closed.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def process(self, job: Job) -> None:
        """Process ``job`` now (in a worker thread) and record its outcome."""
        if job.cancelled:
            return
        if job.injected_error is not None:
            job.finish(self._clock.now(), error=job.injected_error)
            return
        try:
            result = self._run(job)
            job.finish(self._clock.now(), result=result)
        except JobFailure as exc:
            job.finish(self._clock.now(), error=exc.to_error())
        except Exception as exc:
            logger.exception("job %s crashed", job.id)
            job.finish(
                self._clock.now(),
                error=JobFailure("INTERNAL_ERROR", f"Emulator error while running the job: {exc}").to_error(),
            )

    def _run(self, job: Job) -> dict[str, Any]:
        workflow = self._workflows.get(job.workflow)
        input_url = workflow.input_file(job.params) if workflow is not None else None
        if workflow is None or input_url is None:
            raise JobFailure("INTERNAL_ERROR", f"Workflow '{job.workflow}' is no longer available.")
        generation = self._store.generation
        path, temporary = self._fetch(input_url)
        try:
            try:
                audio = open_input(path)
                if job.cancelled:
                    return {}
                sink = _Sink(self._store, self._signer, self._config.result_url_ttl_seconds, generation)
                result = workflow.generate(audio, job.params, sink)
                if self._config.result_value_types == "string":
                    result = {k: v if isinstance(v, str) else _as_string(v) for k, v in result.items()}
                return self._copy_results(job, result, sink)
            except BadInputError as exc:
                raise JobFailure("BAD_INPUT", str(exc)) from exc
            except FileNotFoundError as exc:
                raise JobFailure("BAD_INPUT", "File not found.") from exc
        finally:
            if temporary:
                discard(path)

    def _copy_results(self, job: Job, result: dict[str, Any], sink: _Sink) -> dict[str, Any]:
        """PUT each output named in ``copyResultsTo`` to its URL; its value becomes ``[custom storage]``.

        A file output is PUT as is; a value output as its text. Only loopback hosts are reachable: any
        other host, or an answer other than 2xx, fails the job ``INTERNAL_ERROR`` (assumed, FIDELITY.md).
        """
        copied = dict(result)
        for output, url in job.copy_results_to.items():
            if output not in result:
                continue
            file = sink.files.get(result[output]) if isinstance(result[output], str) else None
            if file is not None:
                path, content_type = file
                body = path.read_bytes()
            else:
                value = result[output]
                body = (value if isinstance(value, str) else _as_string(value)).encode()
                content_type = "text/plain; charset=utf-8"
            self._put_copy(output, url, body, content_type)
            copied[output] = CUSTOM_STORAGE
        return copied

    def _put_copy(self, output: str, url: str, body: bytes, content_type: str) -> None:
        failure = f"Could not copy the output '{output}' to custom storage"
        parts = urlsplit(url)
        host = parts.hostname or ""
        if not is_loopback_host(host) and host != self._storage_host:
            raise JobFailure("INTERNAL_ERROR", f"{failure}: {parts.scheme}://{host} is not reachable.")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        conn = _connection(parts.scheme, host, port, self._config.input_timeout_seconds)
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            headers = {
                "Host": parts.netloc.rpartition("@")[2],
                "Content-Type": content_type,
                "Content-Length": str(len(body)),
                "User-Agent": "musicai-emulator",
            }
            conn.request("PUT", target, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if not 200 <= response.status < 300:
                raise JobFailure("INTERNAL_ERROR", f"{failure}: HTTP {response.status}.")
        except (OSError, http.client.HTTPException) as exc:
            raise JobFailure("INTERNAL_ERROR", f"{failure}: {type(exc).__name__}.") from exc
        finally:
            conn.close()

    def _fetch(self, url: str) -> tuple[Path, bool]:
        """Return ``(path, is_temporary)`` of the input; raise :class:`JobFailure`."""
        local = self._input_file(url)
        if local is not None:
            return local, False
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise JobFailure("BAD_INPUT", "The input URL is malformed.") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise JobFailure("BAD_INPUT", "The input URL must be an http(s) URL.")
        host = parts.hostname
        port = port or (443 if parts.scheme == "https" else 80)
        where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
        if not is_loopback_host(host) and host != self._storage_host:
            raise JobFailure(
                "TIMEOUT",
                f"Timeout reading the input file from {parts.scheme}://{host}: the host is not reachable "
                "(the emulator only reaches loopback hosts).",
            )
        if port in self._own_ports and parts.path.startswith(STORAGE_PREFIX):
            return self._own_blob(parts.path, dict(parse_qsl(parts.query))), False
        if not is_loopback_host(host):
            raise JobFailure("TIMEOUT", f"Timeout reading the input file from {where}: host not reachable.")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return self._download(parts.scheme, host, port, parts.netloc, target, where), True

    def _own_blob(self, path: str, query: dict[str, str]) -> Path:
        try:
            self._signer.check("GET", path, query)
        except SignatureError as exc:
            raise JobFailure(
                "BAD_INPUT",
                f"The input URL was refused by the storage (HTTP {exc.status} {exc.code}): "
                f"{exc.details or exc}",
            ) from exc
        blob = self._store.get(path[len(STORAGE_PREFIX) :])
        if blob is None:
            raise JobFailure("BAD_INPUT", "File not found.")
        return blob.path

    def _download(self, scheme: str, host: str, port: int, netloc: str, target: str, where: str) -> Path:
        conn = _connection(scheme, host, port, self._config.input_timeout_seconds)
        tmp = self._store.temp_path()
        try:
            conn.request(
                "GET", target, headers={"Host": netloc.rpartition("@")[2], "User-Agent": "musicai-emulator"}
            )
            response = conn.getresponse()
            if not 200 <= response.status < 300:
                raise JobFailure(
                    "BAD_INPUT", f"Could not download the input file from {where}: HTTP {response.status}."
                )
            with tmp.open("wb") as out:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
            return tmp
        except http.client.IncompleteRead as exc:
            discard(tmp)
            raise JobFailure(
                "BAD_INPUT", f"The input file from {where} was not completely downloaded."
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            discard(tmp)
            raise JobFailure(
                "TIMEOUT", f"Timeout reading the input file from {where}: {exc or type(exc).__name__}."
            ) from exc
        except BaseException:
            discard(tmp)
            raise
        finally:
            conn.close()


def _connection(scheme: str, host: str, port: int, timeout: float) -> http.client.HTTPConnection:
    """A connection to a loopback ``host`` (names connect to 127.0.0.1; TLS is not verified)."""
    address = "127.0.0.1" if not _is_ip(host) else host
    if scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(address, port, timeout=timeout, context=context)
    return http.client.HTTPConnection(address, port, timeout=timeout)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _as_string(value: Any) -> str:
    """A value output as a string (``"64"``, as the SDK README shows ``bpm``); JSON for other types."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return (
        value
        if isinstance(value, str)
        else (str(value) if isinstance(value, (int, float)) else json.dumps(value))
    )
