"""Bad input: every case is a row of one parametrised test, with the error it must give (its type and
the words that name the problem). None of them may leave a job running, a partial file in a
destination, or a partial upload on the storage; the key and signed URLs never appear in the text.

Run: ``pytest -m badinput``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_musicai.exceptions import (
    MusicAIAPIError,
    MusicAIAuthError,
    MusicAIConfigurationError,
    MusicAIError,
    MusicAIInputError,
    MusicAIInvalidRequestError,
    MusicAIJobFailedError,
    MusicAIMalformedResponseError,
    MusicAINotFoundError,
    MusicAIRateLimitError,
    MusicAIServerError,
    MusicAITimeoutError,
    MusicAITransportError,
)
from airflow_provider_musicai.hooks.musicai import MusicAIHook
from tests.helpers.audio import wav_bytes
from tests.helpers.hooks import HookOn
from tests.helpers.hostile import HostileServer, Reply
from tests.helpers.reliability import leftover_partials, record, wait_until, wait_until_async

pytestmark = pytest.mark.badinput

STEMS = "music-ai/stems-vocals-accompaniment"
TRANSCRIBE = "music-ai/transcribe-vocals"
UNKNOWN_JOB = "00000000-0000-4000-8000-000000000000"
#: Over FAST_RETRIES: fewer retries and shorter timeouts, as each case ends in an error.
FAST = {"max_retries": 2, "timeout": 3, "connect_timeout": 2}


@dataclass
class Ctx:
    """What a case can use: a hook on the emulator, the emulator, a scratch folder, helpers."""

    emulator: Any
    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    hook: MusicAIHook
    build_hook: HookOn
    setup_jobs: set[str] = field(default_factory=set)
    servers: list[HostileServer] = field(default_factory=list)
    built: int = 0

    def file(self, name: str = "track.wav", data: bytes | None = None) -> Path:
        path = self.tmp / "inputs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(wav_bytes() if data is None else data)
        return path

    def input_url(self, data: bytes | None = None) -> str:
        return self.hook.upload_file(self.file(data=data))

    def running_job(self) -> str:
        """A job that stays QUEUED for a minute (made by the case's setup, deleted afterwards)."""
        self.emulator.admin.configure(queued_seconds=60)
        job_id = self.hook.create_job("setup", STEMS, {"inputUrl": self.input_url()})
        self.emulator.admin.configure(queued_seconds=0.05)
        self.setup_jobs.add(job_id)
        return job_id

    def finished_job(self, workflow: str = STEMS) -> dict[str, Any]:
        job_id = self.hook.create_job("setup", workflow, {"inputUrl": self.input_url()})
        self.setup_jobs.add(job_id)
        return self.hook.wait_for_job(job_id, poll_interval=0.05, timeout=30)

    def hook_on(self, host: str, *, password: str | None = None, raw_extra: str | None = None) -> MusicAIHook:
        """A hook on a connection to ``host`` (an http(s) URL) with this key and extra."""
        key = self.emulator.api_key if password is None else password
        conn_id = f"musicai_case_{self.built}"
        self.built += 1
        return self.build_hook(host, conn_id=conn_id, key=key, raw_extra=raw_extra, **FAST)

    def raw_server(self, payload: bytes) -> HostileServer:
        """A server answering every request with the bytes ``payload``, then closing."""
        server = HostileServer(lambda request: Reply(raw=payload))
        self.servers.append(server)
        return server

    def wait(self, job_id: str) -> dict[str, Any]:
        return self.hook.wait_for_job(job_id, poll_interval=0.05, timeout=30)


@dataclass(frozen=True)
class Case:
    """One bad input: what to do, the error type it must raise and a regex of the words naming it.
    ``error=None``: the input is handled safely without an error, ``check`` says how."""

    id: str
    action: Callable[[Ctx], Any]
    error: type[BaseException] | None
    words: str = ""
    sends_nothing: bool = False
    check: Callable[[Ctx, Any], None] | None = None
    marks: tuple[Any, ...] = ()


# -- actions that need more than one line ----------------------------------------------------------


class _DeniedFS:
    """An object store that refuses to read (an S3 object the credentials cannot read)."""

    def info(self, path: str) -> dict[str, Any]:
        raise PermissionError(f"Access Denied: {path}")


class _DeniedPath:
    """What an ``ObjectStoragePath`` looks like to the hook (``fs`` and ``path``)."""

    fs = _DeniedFS()
    path = "bucket/denied.wav"

    def __str__(self) -> str:
        return "s3://bucket/denied.wav"


class _Shrinking(io.BytesIO):
    """A file that claims more bytes than it delivers (it changed while being uploaded)."""

    def seek(self, offset: int, whence: int = 0) -> int:
        position = super().seek(offset, whence)
        return position + 4096 if whence == io.SEEK_END else position


def _text_mode_file(ctx: Ctx) -> Any:
    with ctx.file().open("r", errors="replace") as handle:
        return ctx.hook.upload_file(handle)


def _deleted_while_waiting(ctx: Ctx) -> Any:
    job_id = ctx.running_job()

    def delete_once_polled() -> None:
        wait_until(
            "the wait to poll the job",
            lambda: ctx.emulator.admin.counters()["requests"].get("GET /v1/job/{id}/status"),
        )
        ctx.hook.delete_job(job_id)

    deleter = threading.Thread(target=delete_once_polled)
    deleter.start()
    try:
        return ctx.hook.wait_for_job(job_id, poll_interval=0.05, timeout=30)
    finally:
        deleter.join()


def _deleted_while_deferred(ctx: Ctx) -> Any:
    from airflow_provider_musicai.trigger_events import job_from_event
    from airflow_provider_musicai.triggers._poller import shared_poller
    from airflow_provider_musicai.triggers.musicai import MusicAIJobTrigger

    job_id = ctx.running_job()
    trigger = MusicAIJobTrigger(job_id=job_id, poll_interval=0.05)

    async def first_event() -> Any:
        poller = shared_poller(trigger.musicai_conn_id, trigger.poll_interval, trigger.max_consecutive_errors)

        async def delete_once_polled() -> None:
            await wait_until_async(
                "the trigger to poll the job", lambda: poller.waiting == 1 and poller.stats.cycles >= 1
            )
            await ctx.hook.adelete_job(job_id)

        deleter = asyncio.ensure_future(delete_once_polled())
        async for event in trigger.run():
            await deleter
            return event.payload
        return None

    return job_from_event(asyncio.run(first_event()))


def _expired_input_url(ctx: Ctx) -> Any:
    ctx.emulator.admin.configure(download_url_ttl_seconds=60)
    url = ctx.input_url()
    ctx.emulator.admin.advance_clock(61)  # emulated time: the URLs expire without a wait
    return ctx.wait(ctx.hook.create_job("expired input", STEMS, {"inputUrl": url}))


def _expired_result_urls(ctx: Ctx) -> Any:
    """A job document kept from earlier (its signed result URLs have expired since) is downloaded."""
    ctx.emulator.admin.configure(result_url_ttl_seconds=60)
    job = ctx.finished_job()
    ctx.emulator.admin.advance_clock(61)  # emulated time: the URLs expire without a wait
    return ctx.hook.download_results(job, ctx.tmp / "out")


def _expired_result_urls_renewed(ctx: Ctx) -> Any:
    """As above, but the API signs result URLs anew on every read (as the hook hopes): the emulator
    keeps its URLs, so a second job on the same input stands in for the renewed document."""
    ctx.emulator.admin.configure(result_url_ttl_seconds=60)
    url = ctx.input_url()
    expired = ctx.wait(ctx.hook.create_job("old", STEMS, {"inputUrl": url}))
    ctx.emulator.admin.configure(result_url_ttl_seconds=3600)
    renewed = ctx.wait(ctx.hook.create_job("renewed", STEMS, {"inputUrl": url}))
    ctx.emulator.admin.advance_clock(61)  # emulated time: the URLs expire without a wait
    real_get_job = ctx.hook.get_job
    ctx.monkeypatch.setattr(
        ctx.hook,
        "get_job",
        lambda job_id: {**renewed, "id": job_id} if job_id == expired["id"] else real_get_job(job_id),
    )
    return ctx.hook.download_results(expired, ctx.tmp / "out")


def _check_fresh_download(ctx: Ctx, written: Any) -> None:
    """Each expired URL was refused once, then downloaded from the renewed one, whole."""
    assert set(written) == {"vocals", "accompaniments"}
    for path in written.values():
        assert Path(path).read_bytes()[:4] == b"RIFF"
    statuses = ctx.emulator.admin.counters()["endpoint_statuses"]["GET /storage/{key}"]
    assert statuses == {"400": 2, "200": 2}, statuses  # Cloud Storage: 400 ExpiredToken


def _expired_anonymous_result(ctx: Ctx) -> Any:
    """A bare result URL that expired, with no job id to fetch a fresh one from."""
    ctx.emulator.admin.configure(result_url_ttl_seconds=60)
    url = ctx.finished_job()["result"]["vocals"]
    ctx.emulator.admin.advance_clock(61)  # emulated time: the URLs expire without a wait
    return ctx.hook.download_results({"status": "SUCCEEDED", "result": {"vocals": url}}, ctx.tmp / "out")


def _refused_input(ctx: Ctx) -> Any:
    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx.emulator.admin.configure(input_timeout_seconds=1)
    job_id = ctx.hook.create_job("refused input", STEMS, {"inputUrl": f"http://127.0.0.1:{port}/a.wav"})
    return ctx.wait(job_id)


def _escaping_result_keys(ctx: Ctx) -> Any:
    job = ctx.finished_job()
    url = job["result"]["vocals"]
    forged = {**job, "result": {"../../escaped": url, "/etc/passwd": url, "..": url, "a/../../b": url}}
    return ctx.hook.download_results(forged, ctx.tmp / "out" / "dest")


def _check_escaping(ctx: Ctx, written: Any) -> None:
    dest = (ctx.tmp / "out" / "dest").resolve()
    assert set(written) == {"../../escaped", "/etc/passwd", "..", "a/../../b"}
    for path in written.values():
        assert Path(path).resolve().parent == dest, path
    outside = [p for p in (ctx.tmp / "out").rglob("*") if p.is_file() and dest not in p.resolve().parents]
    assert outside == [], outside
    assert len(list(dest.iterdir())) == 4


def _proxy_truncated_json(ctx: Ctx) -> Any:
    body = b'{"id": "2e35babc-91c4-4121-89f4-5a2acf956b28", "sta'
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    server = ctx.raw_server(head.encode() + body)
    return ctx.hook_on(f"http://127.0.0.1:{server.port}/v1").get_job(UNKNOWN_JOB)


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _all(fault: str) -> dict[str, Any]:
    return {"script": [{"match": "*", "fault": fault, "count": 100}], "scope": "api"}


CASES: list[Case] = [
    # -- upload sources: caught before anything is sent ---------------------------------------------
    Case(
        "source-missing",
        lambda c: c.hook.upload_file(c.tmp / "nope.wav"),
        MusicAIInputError,
        r"nope\.wav does not exist",
        sends_nothing=True,
    ),
    Case(
        "source-empty",
        lambda c: c.hook.upload_file(c.file("empty.wav", b"")),
        MusicAIInputError,
        r"empty\.wav is empty \(0 bytes\)",
        sends_nothing=True,
    ),
    Case(
        "source-folder",
        lambda c: c.hook.upload_file(c.tmp),
        MusicAIInputError,
        r"is a folder, not a file",
        sends_nothing=True,
    ),
    Case(
        "source-unreadable",
        lambda c: c.hook.upload_file(_DeniedPath()),
        MusicAIInputError,
        r"denied\.wav is not readable \(permission denied\)",
        sends_nothing=True,
    ),
    Case(
        "source-text-mode",
        _text_mode_file,
        MusicAIInputError,
        r"opened in text mode; open it with 'rb'",
        sends_nothing=True,
    ),
    Case(
        "source-raw-bytes",
        lambda c: c.hook.upload_file(b"RIFF...."),
        MusicAIInputError,
        r"not raw bytes",
        sends_nothing=True,
    ),
    Case(
        "source-unknown-protocol",
        lambda c: c.hook.upload_file("nosuchproto://bucket/track.wav"),
        MusicAIInputError,
        r"no filesystem for this URL",
        sends_nothing=True,
    ),
    Case(
        "source-shrinks-while-uploading",
        lambda c: c.hook.upload_file(_Shrinking(wav_bytes())),
        MusicAIInputError,
        r"ended after \d+ of \d+ bytes \(did it change while being uploaded\?\)",
    ),
    # -- job creation ---------------------------------------------------------------------------
    Case(
        "workflow-unknown",
        lambda c: c.hook.create_job("x", "music-ai/no-such-workflow", {"inputUrl": c.input_url()}),
        MusicAINotFoundError,
        r"HTTP 404\): Workflow not found",
    ),
    Case(
        "params-rejected-422",
        lambda c: c.hook.create_job("x", TRANSCRIBE, {"inputUrl": c.input_url(), "language": "xx"}),
        MusicAIInvalidRequestError,
        r"HTTP 422\): Parameter 'language' must be one of",
    ),
    Case(
        "workflow-contains-errors",
        lambda c: c.hook.create_job("x", "broken-workflow", {"file": c.input_url()}),
        MusicAIInvalidRequestError,
        r"HTTP 422\): The workflow contains errors: module 'Stems' has no input",
        marks=(
            pytest.mark.musicai_workflows(
                {
                    "slug": "broken-workflow",
                    "inputs": [{"name": "file", "type": "file"}],
                    "outputs": [{"name": "file"}],
                    "errors": "module 'Stems' has no input",
                }
            ),
        ),
    ),
    Case(
        "params-missing-input",
        lambda c: c.hook.create_job("x", STEMS, {"input": "http://127.0.0.1/a.wav"}),
        MusicAIInvalidRequestError,
        r"HTTP 422\): Unknown parameter 'input'",
    ),
    Case(
        "params-not-a-mapping",
        lambda c: c.hook.create_job("x", STEMS, ["http://127.0.0.1/a.wav"]),  # type: ignore[arg-type]
        MusicAIConfigurationError,
        r"params must be a mapping .* got list",
        sends_nothing=True,
    ),
    Case(
        "params-not-json",
        lambda c: c.hook.create_job("x", STEMS, {"inputUrl": {1, 2}}),
        MusicAIConfigurationError,
        r"params must be JSON-serializable",
        sends_nothing=True,
    ),
    Case(
        "name-empty",
        lambda c: c.hook.create_job("  ", STEMS, {"inputUrl": "http://127.0.0.1/a.wav"}),
        MusicAIConfigurationError,
        r"Job name must be a non-empty string",
        sends_nothing=True,
    ),
    Case(
        "metadata-nested",
        lambda c: c.hook.create_job("x", STEMS, {"inputUrl": "u"}, {"owner": {"team": "a"}}),
        MusicAIConfigurationError,
        r"metadata\['owner'\] must be a str, int, float or bool, got dict \(nested objects",
        sends_nothing=True,
    ),
    Case(
        "metadata-nan",
        lambda c: c.hook.create_job("x", STEMS, {"inputUrl": "u"}, {"gain": math.nan}),
        MusicAIConfigurationError,
        r"metadata\['gain'\] must be a finite number",
        sends_nothing=True,
    ),
    Case(
        "sealed-url-of-another-connection",
        lambda c: c.hook.create_job(
            "x", STEMS, {"inputUrl": MusicAIHook("musicai_other").seal("http://127.0.0.1/x")}
        ),
        MusicAIConfigurationError,
        r"sealed with another connection's API key",
        sends_nothing=True,
    ),
    Case(
        "result-reference-to-a-missing-result",
        lambda c: c.hook.create_job(
            "x", STEMS, {"inputUrl": f"musicai-result://{c.finished_job()['id']}/drums"}
        ),
        MusicAIConfigurationError,
        r"has no URL result 'drums' .*\['accompaniments', 'vocals'\]",
    ),
    # -- job ids and waiting --------------------------------------------------------------------
    Case(
        "job-id-malformed",
        lambda c: c.hook.get_job("../../admin"),
        MusicAIConfigurationError,
        r"Malformed Music AI job id '\.\./\.\./admin'",
        sends_nothing=True,
    ),
    Case(
        "job-id-unknown",
        lambda c: c.hook.get_job(UNKNOWN_JOB),
        MusicAINotFoundError,
        r"HTTP 404\): Job not found\. The job or workflow does not exist",
    ),
    Case(
        "job-of-another-application",
        lambda c: c.hook_on(c.emulator.api_url, password=c.emulator.other_api_key).get_job(c.running_job()),
        MusicAINotFoundError,
        r"jobs are visible only to the key that created them",
    ),
    Case(
        "job-deleted-while-waited-on",
        _deleted_while_waiting,
        MusicAINotFoundError,
        r"GET /job/\{id\}/status failed \(HTTP 404\): Job not found",
    ),
    Case(
        "job-deleted-while-deferred",
        _deleted_while_deferred,
        MusicAIError,
        r"Polling Music AI job .* failed: .*HTTP 404\): Job not found",
    ),
    Case(
        "wait-timeout",
        lambda c: c.hook.wait_for_job(c.running_job(), poll_interval=0.1, timeout=0.5),
        MusicAITimeoutError,
        r"did not finish within 0\.5s \(last status: QUEUED\)",
    ),
    Case(
        "poll-interval-zero",
        lambda c: c.hook.wait_for_job(UNKNOWN_JOB, poll_interval=0),
        MusicAIConfigurationError,
        r"poll_interval must be > 0 seconds",
        sends_nothing=True,
    ),
    Case(
        "status-filter-unknown",
        lambda c: list(c.hook.list_jobs(status="DONE")),
        MusicAIConfigurationError,
        r"Unknown job status filter 'DONE'",
        sends_nothing=True,
    ),
    # -- jobs that end FAILED, each error code --------------------------------------------------
    Case(
        "failed-bad-input",
        lambda c: c.wait(c.hook.create_job("noise", STEMS, {"inputUrl": c.input_url(b"not audio at all")})),
        MusicAIJobFailedError,
        r"FAILED: BAD_INPUT \(Invalid input\): The input file is not a supported audio file",
    ),
    Case(
        "failed-timeout",
        _refused_input,
        MusicAIJobFailedError,
        r"FAILED: TIMEOUT \(Timeout\): Timeout reading the input file",
    ),
    Case(
        "failed-internal-error",
        lambda c: (
            c.emulator.admin.fail_jobs(1, code="INTERNAL_ERROR"),
            c.wait(c.hook.create_job("boom", STEMS, {"inputUrl": c.input_url()})),
        ),
        MusicAIJobFailedError,
        r"FAILED: INTERNAL_ERROR \(Internal error\)",
    ),
    Case(
        "expired-signed-input-url",
        _expired_input_url,
        MusicAIJobFailedError,
        r"FAILED: BAD_INPUT \(Invalid input\): .*HTTP 400.*ExpiredToken",
    ),
    Case(
        "expired-signed-result-urls",
        _expired_result_urls,
        MusicAIAPIError,
        r"HTTP 400\): ExpiredToken: .*has expired.*same URL: the result is no longer available",
    ),
    Case(
        "expired-signed-result-urls-renewed-by-the-api",
        _expired_result_urls_renewed,
        None,
        check=_check_fresh_download,
    ),
    Case(
        "expired-signed-result-url-of-an-unknown-job",
        _expired_anonymous_result,
        MusicAIAPIError,
        r"HTTP 400\): ExpiredToken: .*has expired.*this one cannot be used again",
    ),
    # -- downloads ------------------------------------------------------------------------------
    Case(
        "download-destination-is-a-file",
        lambda c: c.hook.download_results(c.finished_job(), c.file("taken.wav")),
        MusicAIInputError,
        r"taken\.wav exists and is not a folder",
    ),
    Case(
        "download-before-succeeded",
        lambda c: c.hook.download_results(c.running_job(), c.tmp / "out"),
        MusicAIError,
        r"is QUEUED: results exist only once it SUCCEEDED",
    ),
    Case(
        "result-key-escaping-the-folder",
        _escaping_result_keys,
        None,
        check=_check_escaping,
    ),
    # -- the connection and the wire ------------------------------------------------------------
    Case(
        "wrong-api-key",
        lambda c: c.hook_on(c.emulator.api_url, password="not-the-key-0123").get_application(),
        MusicAIAuthError,
        r"HTTP 401\): Missing or invalid API key\. Check the API key in the connection's password field",
    ),
    Case(
        "no-api-key",
        lambda c: c.hook_on(c.emulator.api_url, password="").get_application(),
        MusicAIConfigurationError,
        r"has no API key: put the Music AI API key in its password field",
        sends_nothing=True,
    ),
    Case(
        "extra-not-json",
        lambda c: c.hook_on(c.emulator.api_url, raw_extra="{timeout: 5").get_application(),
        MusicAIConfigurationError,
        r"extra is not valid JSON",
        sends_nothing=True,
    ),
    Case(
        "host-not-http",
        lambda c: c.hook_on("ftp://127.0.0.1/v1").get_application(),
        MusicAIConfigurationError,
        r"host must be an http\(s\) URL",
        sends_nothing=True,
    ),
    Case(
        "plain-http-to-a-remote-host",
        lambda c: c.hook_on("http://api.example.com/v1").get_application(),
        MusicAIConfigurationError,
        r"plain HTTP to api\.example\.com.*unencrypted",
        sends_nothing=True,
    ),
    Case(
        "host-does-not-resolve",
        lambda c: c.hook_on("https://no-such-host.invalid/v1").get_application(),
        MusicAITransportError,
        r"GET /application failed: cannot connect \(NameResolutionError\)",
    ),
    Case(
        "host-refuses",
        lambda c: c.hook_on(f"http://127.0.0.1:{_refused_port()}/v1").get_application(),
        MusicAITransportError,
        r"GET /application failed: cannot connect",
    ),
    Case(
        "proxy-502-html-page",
        lambda c: (c.emulator.admin.set_faults(_all("502")), c.hook.get_application()),
        MusicAIServerError,
        r"HTTP 502\)\. The response body is not a JSON error \(text/html",
    ),
    Case(
        "truncated-json-body",
        lambda c: (c.emulator.admin.set_faults(_all("truncate")), c.hook.get_application()),
        MusicAITransportError,
        r"GET /application failed: connection lost",
    ),
    Case(
        "proxy-truncated-json-complete-answer",
        _proxy_truncated_json,
        MusicAIMalformedResponseError,
        r"HTTP 200\)\. The response body is not JSON \(application/json, \d+ bytes\)",
    ),
    Case(
        "rate-limited-for-good",
        lambda c: (c.emulator.admin.set_faults(_all("429")), c.hook.get_application()),
        MusicAIRateLimitError,
        r"HTTP 429\): Rate limit exceeded, retry later\. Rate limited; retries were exhausted\.$",
    ),
]


@pytest.fixture
def ctx(
    emulator: Any,
    connect: Callable[..., dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hook_on: HookOn,
) -> Iterator[Ctx]:
    emulator.admin.configure(queued_seconds=0.05, processing_seconds=0.1)
    connect(**FAST)
    connect("musicai_other", key=emulator.other_api_key, **FAST)
    context = Ctx(
        emulator=emulator, tmp=tmp_path, monkeypatch=monkeypatch, hook=MusicAIHook(), build_hook=hook_on
    )
    yield context
    for server in context.servers:
        server.close()
    context.hook.close()


ANSWERED: dict[str, str] = {}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input_is_answered_clearly(case: Case, ctx: Ctx, loopback_only: Any) -> None:
    emulator = ctx.emulator
    before = emulator.admin.counters()["requests_total"]
    outcome: Any = None
    error: BaseException | None = None
    try:
        outcome = case.action(ctx)
    except Exception as exc:
        error = exc
    emulator.admin.clear_faults()

    if case.error is None:
        assert error is None, f"{case.id}: unexpected {type(error).__name__}: {error}"
        assert case.check is not None
        case.check(ctx, outcome)
    else:
        assert error is not None, f"{case.id}: no error; returned {outcome!r}"
        assert type(error) is case.error, f"{case.id}: {type(error).__name__} ({error}), not {case.error}"
        assert re.search(case.words, str(error), re.IGNORECASE | re.DOTALL), f"{case.id}: {error}"
        text = f"{error!s} {error!r}"
        for secret in (emulator.api_key, emulator.other_api_key, "not-the-key-0123", "X-Signature"):
            assert secret not in text, f"{case.id}: {secret!r} in {text}"
    if case.sends_nothing:
        assert emulator.admin.counters()["requests_total"] == before, f"{case.id}: a request was sent"

    # Nothing left behind: no job running but those the setup made, no partial file anywhere.
    running = {
        job["id"]
        for job in emulator.admin.jobs()
        if job["status"] in ("QUEUED", "STARTED") and job["id"] not in ctx.setup_jobs
    }
    assert running == set(), f"{case.id}: jobs left running: {running}"
    assert leftover_partials(ctx.tmp) == []
    wait_until("no partial upload on the storage", lambda: emulator.admin.storage()["temp_files"] == 0)
    for job_id in ctx.setup_jobs:
        with contextlib.suppress(MusicAINotFoundError):
            ctx.hook.delete_job(job_id)
    ANSWERED[case.id] = "no error (handled safely)" if error is None else type(error).__name__
    record("badinput", "cases_tried", len(CASES))
    record("badinput", "cases_answered", len(ANSWERED))
    record("badinput", "answers", dict(sorted(ANSWERED.items())))
