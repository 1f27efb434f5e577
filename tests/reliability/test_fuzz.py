"""Fuzzing: whatever the API (or anything posing as it) answers, the hook gives back a value of the
documented type or a typed ``MusicAIError``, never anything else; and schema-driven fuzzing of the
emulator (schemathesis over its OpenAPI) finds no 5xx it did not mean to give.

Run: ``pytest -m fuzz`` (``MUSICAI_RELIABILITY_FULL=1`` for ten times the examples).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_musicai.common import redact_url
from airflow_provider_musicai.exceptions import MusicAIError
from airflow_provider_musicai.hooks import _api
from airflow_provider_musicai.hooks._calls import (
    AmbiguousRequestError,
    HttpAnswer,
    Pause,
    TransportFailure,
    call_plan,
    parse_retry_after,
)
from airflow_provider_musicai.hooks._config import RetryPolicy
from airflow_provider_musicai.jobs import raise_if_failed
from airflow_provider_musicai.references import public_job_document, resolve_references, seal
from airflow_provider_musicai.status_log import describe_result
from airflow_provider_musicai.trigger_events import job_from_event
from tests.helpers.hooks import set_connection
from tests.helpers.hostile import HostileServer, Reply
from tests.helpers.reliability import record, size

pytestmark = pytest.mark.fuzz

JOB_ID = "2e35babc-91c4-4121-89f4-5a2acf956b28"
EXAMPLES = size(200, 2000)
SOCKET_EXAMPLES = size(200, 2000)
SCHEMA_EXAMPLES = size(50, 500)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)

ENDPOINTS: list[_api.Endpoint[Any]] = [
    _api.GET_APPLICATION,
    _api.GET_UPLOAD_URL,
    _api.GET_JOB,
    _api.GET_JOB_STATUS,
    _api.LIST_JOBS,
    _api.CREATE_JOB,
    _api.DELETE_JOB,
    _api.LIST_WORKFLOWS,
]
#: What a successful call returns, per endpoint.
RESULT_TYPES: dict[str, type] = {
    "GET /application": dict,
    "GET /upload": dict,
    "GET /job/{id}": dict,
    "GET /job/{id}/status": str,
    "GET /job": list,
    "POST /job": str,
    "DELETE /job/{id}": str,
    "GET /workflow": list,
}

# -- strategies ------------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["QUEUED", "STARTED", "SUCCEEDED", "FAILED", JOB_ID, "http://x/y?X-Signature=ab"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["id", "status", "name", "result", "error", "jobs", "workflows", "message"])
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "status": json_values,
        "name": json_values,
        "uploadUrl": json_values,
        "downloadUrl": json_values,
        "result": json_values,
        "error": json_values,
        "jobs": st.lists(json_values, max_size=3),
        "workflows": st.lists(json_values, max_size=3),
        "message": json_values,
    },
)


def _deep(depth: int, opener: bytes, closer: bytes) -> bytes:
    return opener * depth + closer * depth


bodies = st.one_of(
    st.binary(max_size=400),
    json_values.map(lambda value: json.dumps(value).encode()),
    documents.map(lambda value: json.dumps(value).encode()),
    st.integers(1, 200_000).map(lambda depth: _deep(depth, b"[", b"]")),
    st.integers(1, 200_000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.integers(4300, 20_000).map(lambda digits: b'{"id": ' + b"7" * digits + b"}"),
    json_values.map(lambda value: json.dumps(value).encode("utf-16")),
    st.sampled_from(
        [
            b"",
            b"null",
            b"NaN",
            b'{"id": NaN, "status": Infinity}',
            b'{"id": "\\ud800", "status": "QUEUED"}',
            b'{"message": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            b"<html><body>502 Bad Gateway</body></html>",
            b'{"id": "ab',
        ]
    ),
)
statuses = st.one_of(
    st.integers(100, 599), st.sampled_from([200, 201, 204, 400, 401, 404, 422, 429, 500, 502])
)
retry_after_texts = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.sampled_from(["0", "1", "-5", "1e400", "nan", "inf", "Wed, 21 Oct 2015 07:28:00 GMT", "Mon, 99"]),
    st.floats().map(str),
)
answers = st.builds(
    lambda status, body, content_type, retry_after: HttpAnswer(
        status, body, content_type, parse_retry_after(retry_after)
    ),
    statuses,
    bodies,
    st.none() | st.text(max_size=30) | st.just("application/json"),
    retry_after_texts,
)
failures = st.builds(TransportFailure, st.text(max_size=30), st.booleans())
outcomes = st.lists(answers | failures, min_size=1, max_size=12)
policies = st.builds(
    RetryPolicy,
    max_retries=st.integers(0, 8),
    backoff=st.floats(0, 5),
    max_wait=st.floats(0, 60),
    max_retry_time=st.floats(0, 600),
)


def drive(plan: Any, scripted: list[Any], clock: list[float]) -> tuple[Any, list[float], list[Any]]:
    """Run a call plan on scripted outcomes (repeating the last one); the fake clock follows pauses.
    Returns (value or MusicAIError, pauses, outcomes sent)."""
    pauses: list[float] = []
    sent: list[Any] = []
    try:
        step = next(plan)
        while True:
            if isinstance(step, Pause):
                pauses.append(step.seconds)
                clock[0] += step.seconds
                step = plan.send(None)
            else:
                outcome = scripted[min(len(sent), len(scripted) - 1)]
                sent.append(outcome)
                step = plan.send(outcome)
    except StopIteration as done:
        return done.value, pauses, sent
    except MusicAIError as error:
        return error, pauses, sent


def _ambiguous(outcome: HttpAnswer | TransportFailure) -> bool:
    """Whether the server may have acted on the request although no success came back."""
    if isinstance(outcome, TransportFailure):
        return outcome.maybe_sent
    return outcome.status >= 500


# -- the sans-IO plan and the interpretation -------------------------------------------------------


@FUZZ
@given(endpoint=st.sampled_from(ENDPOINTS), scripted=outcomes, policy=policies)
def test_the_call_plan_gives_a_value_or_a_typed_error(
    endpoint: _api.Endpoint[Any], scripted: list[Any], policy: RetryPolicy
) -> None:
    """Any sequence of answers and failures: a value of the endpoint's type or a MusicAIError;
    bounded retries and pauses; POST /job never sent again after a possibly processed attempt."""
    clock = [0.0]
    request = _api.build_request(endpoint, job_id=JOB_ID, json_body={} if endpoint.method == "POST" else None)
    result, pauses, sent = drive(call_plan(request, policy, clock=lambda: clock[0]), scripted, clock)
    if not isinstance(result, MusicAIError):
        assert isinstance(result, RESULT_TYPES[endpoint.label]), (endpoint.label, result)
    assert 1 <= len(sent) <= policy.max_retries + 1
    assert all(math.isfinite(pause) and pause >= 0 for pause in pauses)
    assert sum(pauses) <= policy.max_retry_time + 1e-6
    if endpoint is _api.CREATE_JOB:
        for index, outcome in enumerate(sent[:-1]):
            assert not _ambiguous(outcome), f"POST /job sent again after {outcome!r} (attempt {index + 1})"
        if _ambiguous(sent[-1]):
            assert isinstance(result, AmbiguousRequestError), result


@FUZZ
@given(endpoint=st.sampled_from(ENDPOINTS), status=statuses, body=bodies, content_type=st.none() | st.text())
def test_any_response_body_gives_a_value_or_a_typed_error(
    endpoint: _api.Endpoint[Any], status: int, body: bytes, content_type: str | None
) -> None:
    """Random bytes, JSON of any shape, 200,000-deep nesting, 20,000-digit numbers, UTF-16."""
    request = _api.build_request(endpoint, job_id=JOB_ID)
    value: Any
    try:
        value = _api.interpret_response(request, status, body, content_type)
    except MusicAIError as error:
        value = error
    if isinstance(value, MusicAIError):
        assert str(value)
    else:
        assert isinstance(value, RESULT_TYPES[endpoint.label])
        assert 200 <= status < 400


@FUZZ
@given(value=retry_after_texts)
def test_retry_after_is_a_non_negative_number_or_nothing(value: str | None) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or (seconds >= 0 and not math.isnan(seconds))


#: Job documents as the hook hands them on (``GET /job/{id}`` checked ``id`` and ``status``), with
#: anything in the other fields; results hold the documented flat values (URLs, text, numbers).
hook_documents = st.builds(
    lambda doc, job_id, status, result: {**doc, "id": job_id, "status": status, "result": result},
    documents,
    st.sampled_from([JOB_ID, "j-1"]),
    st.sampled_from(["QUEUED", "STARTED", "SUCCEEDED", "FAILED"]) | st.text(min_size=1, max_size=8),
    st.none()
    | json_values
    | st.dictionaries(st.text(max_size=8), json_scalars | st.just("https://cdn/x.wav?X-Signature=ab")),
)


@FUZZ
@given(job=hook_documents, event=json_values | documents)
def test_job_documents_and_events_of_any_shape(job: dict[str, Any], event: Any) -> None:
    """What the operators do with a job document or a trigger event: typed errors only, and no
    signed URL left in the copy that goes to XCom."""
    with contextlib.suppress(MusicAIError):
        raise_if_failed(job)
    public = public_job_document(job)
    assert "X-Signature=ab" not in json.dumps(public["result"], default=str)
    describe_result(job)
    with contextlib.suppress(MusicAIError):
        job_from_event(event)
    with contextlib.suppress(MusicAIError):
        job_from_event({"status": "success", "job_id": JOB_ID, "job": job})


@FUZZ
@given(value=json_values, fetched=hook_documents)
def test_references_of_any_shape_resolve_or_fail_typed(value: Any, fetched: dict[str, Any]) -> None:
    """Params holding references, sealed tokens (good, foreign, corrupted) and junk."""
    key = "fuzz-key"
    params = {
        "a": value,
        "ref": f"musicai-result://{JOB_ID}/vocals",
        "sealed": seal("http://127.0.0.1/x?X-Signature=1", key),
        "foreign": seal("http://127.0.0.1/x", "another key"),
        "broken": "musicai-sealed:%%%",
        "bad_ref": "musicai-result://",
    }
    for name in params:
        with contextlib.suppress(MusicAIError):
            resolve_references({name: params[name]}, key, lambda _job_id: fetched)


@FUZZ
@given(
    url=st.text(max_size=80)
    | st.from_regex(r"https?://[a-z0-9.:\[\]@]{0,20}/[^\s]{0,20}\?X-Signature=[0-9a-f]{8}")
)
def test_redaction_never_fails_and_drops_the_signature(url: str) -> None:
    shown = redact_url(url)
    assert "X-Signature=" not in shown or "X-Signature=" not in url.split("?", 1)[-1]


# -- the whole hook over real sockets, answered with arbitrary bytes -------------------------------

header_names = st.sampled_from(
    [
        "Content-Type",
        "Content-Length",
        "Content-Encoding",
        "Transfer-Encoding",
        "Retry-After",
        "Location",
        "Connection",
        "X-Junk",
    ]
)
header_values = st.one_of(
    st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\r\n"), max_size=30
    ),
    st.sampled_from(
        ["gzip", "br", "deflate", "chunked", "0", "99999", "-1", "application/json", "/v1/job", "close"]
    ),
)


@st.composite
def raw_responses(draw: Callable[..., Any]) -> bytes:
    """A whole HTTP/1.1 response: plausible, malformed, or plain random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return bytes(draw(st.binary(max_size=300)))
    status = draw(statuses)
    body = draw(bodies)
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=5))
    if draw(st.integers(0, 3)) == 0:  # compressed bodies that are not (a classic of broken proxies)
        headers.append(("Content-Encoding", draw(st.sampled_from(["gzip", "deflate", "br", "zstd"]))))
    lines = [f"HTTP/1.1 {status} {draw(st.sampled_from(['OK', 'Nope', '']))}".encode("latin-1")]
    names = {name.lower() for name, _ in headers}
    if "content-length" not in names and "transfer-encoding" not in names:
        headers.append(("Content-Length", str(len(body))))
    for name, value in headers:
        if name == "Location" and "://" in value:
            value = "/v1/redirected"  # relative only: a redirect must not leave loopback
        lines.append(f"{name}: {value}".encode("latin-1"))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@pytest.fixture
def raw_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileServer]:
    """A server answering every request with the bytes its test sets, then closing; ``musicai_fuzz``
    points at it."""
    with HostileServer(lambda request: Reply(raw=b"")) as server:
        extra = {"max_retries": 0, "timeout": 2, "connect_timeout": 2}
        set_connection(monkeypatch, "musicai_fuzz", server, key="fuzz-api-key", extra=extra)
        yield server


def test_the_hook_survives_any_bytes_on_the_wire(raw_server: HostileServer) -> None:
    """Sync (requests) and async (httpx2) calls, uploads and downloads, each answered with
    hypothesis-made HTTP responses: a value of the right type or a MusicAIError, nothing else."""
    from airflow_provider_musicai.hooks._transport import close_shared_async_clients
    from airflow_provider_musicai.hooks.musicai import MusicAIHook

    hook = MusicAIHook(musicai_conn_id="musicai_fuzz")
    loop = asyncio.new_event_loop()
    storage_url = f"http://127.0.0.1:{raw_server.port}/storage/key?X-Signature=00"
    calls: dict[str, Callable[[], Any]] = {
        "get_job_status": lambda: hook.get_job_status(JOB_ID),
        "get_job": lambda: hook.get_job(JOB_ID),
        "create_job": lambda: hook.create_job("fuzz", "music-ai/x", {"inputUrl": "http://127.0.0.1/a"}),
        "list_jobs": lambda: list(hook.list_jobs()),
        "delete_job": lambda: hook.delete_job(JOB_ID),
        "aget_job_status": lambda: loop.run_until_complete(hook.aget_job_status(JOB_ID)),
        "aget_job": lambda: loop.run_until_complete(hook.aget_job(JOB_ID)),
        "download": lambda: hook.storage.download(storage_url, _Sink(), label="fuzz"),
    }
    seen: dict[str, int] = dict.fromkeys(calls, 0)
    typed: dict[str, int] = dict.fromkeys(calls, 0)

    @settings(
        max_examples=SOCKET_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(payload=raw_responses(), name=st.sampled_from(sorted(calls)))
    def run(payload: bytes, name: str) -> None:
        raw_server.handler = lambda request: Reply(raw=payload)
        seen[name] += 1
        try:
            calls[name]()
        except MusicAIError:
            typed[name] += 1

    try:
        run()
    finally:
        loop.run_until_complete(close_shared_async_clients())
        loop.close()
        hook.close()
    record("fuzz", "wire_examples_per_call", seen)
    record("fuzz", "wire_typed_errors_per_call", typed)


class _Sink:
    """A write-only file object for downloads."""

    def __init__(self) -> None:
        self.size = 0

    def seek(self, *_: Any) -> int:
        return 0

    def truncate(self, *_: Any) -> int:
        self.size = 0
        return 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


# -- the emulator, fuzzed from its own OpenAPI schema ----------------------------------------------

SCHEMA_OPERATIONS = [
    ("GET", "/v1/application"),
    ("GET", "/v1/upload"),
    ("GET", "/v1/job"),
    ("POST", "/v1/job"),
    ("GET", "/v1/job/{id}"),
    ("GET", "/v1/job/{id}/status"),
    ("DELETE", "/v1/job/{id}"),
    ("GET", "/v1/workflow"),
]
SCHEMA_FIGURES: dict[str, Any] = {"cases": 0, "statuses": {}}


@pytest.fixture(scope="module")
def emulator_schema(musicai_emulator_server: Any) -> Any:
    schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra")

    return schemathesis.openapi.from_url(musicai_emulator_server.base_url + "/openapi.json")


@pytest.mark.parametrize(
    ("method", "path"), SCHEMA_OPERATIONS, ids=[f"{m} {p}" for m, p in SCHEMA_OPERATIONS]
)
def test_schemathesis_finds_no_unintended_5xx(
    emulator: Any, emulator_schema: Any, method: str, path: str
) -> None:
    """Every operation of ``/openapi.json``, with generated valid and invalid inputs (schemathesis'
    positive and negative modes): never a 5xx (no fault is configured, so none is meant)."""
    from schemathesis import GenerationMode  # emulator_schema skipped the test if it is missing
    from schemathesis.checks import not_a_server_error

    emulator.admin.configure(queued_seconds=3600)  # no processing: the API alone is under test
    operation = emulator_schema[path][method]
    session = requests.Session()
    session.trust_env = False
    statuses: dict[str, int] = SCHEMA_FIGURES["statuses"]

    @settings(
        max_examples=SCHEMA_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(
        case=st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
        )
    )
    def run(case: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": emulator.api_key}
        response = case.call(session=session, timeout=10)
        SCHEMA_FIGURES["cases"] += 1
        statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
        assert response.status_code < 500, (case.as_curl_command(), response.text[:300])
        case.validate_response(response, checks=(not_a_server_error,))

    run()
    counters = emulator.admin.counters()
    assert not any(status.startswith("5") for status in counters["statuses"]), counters["statuses"]
    record("fuzz", "schemathesis_cases", SCHEMA_FIGURES["cases"])
    record("fuzz", "schemathesis_statuses", dict(sorted(statuses.items())))
    record("fuzz", "schemathesis_5xx", sum(n for s, n in statuses.items() if s.startswith("5")))


def test_the_storage_listener_never_answers_5xx(emulator: Any) -> None:
    """Signed-URL requests with random methods, keys, signatures, expiries, ranges and bodies."""
    upload = requests.get(emulator.api_url + "/upload", headers=emulator.headers(), timeout=10).json()
    assert requests.put(upload["uploadUrl"], data=b"x" * 1000, timeout=10).status_code == 200
    real = upload["downloadUrl"]
    base = emulator.storage_url + "/storage/"
    session = requests.Session()
    session.trust_env = False
    statuses: dict[str, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        method=st.sampled_from(["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH"]),
        target=st.one_of(
            st.just(real),
            st.just(upload["uploadUrl"]),
            st.builds(lambda key: base + key, st.text(max_size=40)),
            st.builds(
                lambda url, expires, sig: url.split("?")[0] + f"?X-Expires={expires}&X-Signature={sig}",
                st.sampled_from([real, upload["uploadUrl"]]),
                st.text(max_size=12) | st.integers(-(10**20), 10**20).map(str),
                st.text(max_size=70),
            ),
        ),
        range_header=st.none()
        | st.text(max_size=30)
        | st.from_regex(r"bytes=-?\d{0,6}-?\d{0,6}", fullmatch=True),
        body=st.none() | st.binary(max_size=200),
    )
    def run(method: str, target: str, range_header: str | None, body: bytes | None) -> None:
        headers = {"Range": range_header} if range_header is not None else {}
        try:
            response = session.request(method, target, headers=headers, data=body, timeout=10)
        except (requests.exceptions.InvalidURL, ValueError):
            return  # refused by requests itself, never sent
        statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
        assert response.status_code < 500, (method, target, response.text[:300])

    run()
    record("fuzz", "storage_requests", sum(statuses.values()))
    record("fuzz", "storage_statuses", dict(sorted(statuses.items())))
