"""The sans-IO parts of the hook: configuration, retry plan, response interpretation, names."""

from __future__ import annotations

import contextlib
import json
import pickle
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_musicai.common import redact_url
from airflow_provider_musicai.exceptions import (
    MusicAIAPIError,
    MusicAIAuthError,
    MusicAIConfigurationError,
    MusicAIError,
    MusicAIInvalidRequestError,
    MusicAIJobFailedError,
    MusicAINotFoundError,
    MusicAIRateLimitError,
    MusicAIServerError,
    MusicAITransportError,
)
from airflow_provider_musicai.hooks import _api
from airflow_provider_musicai.hooks._calls import (
    AmbiguousRequestError,
    HttpAnswer,
    Pause,
    TransportFailure,
    call_plan,
    parse_retry_after,
)
from airflow_provider_musicai.hooks._config import ConnectionConfig, RetryPolicy, is_loopback_host
from airflow_provider_musicai.hooks._destination import safe_filename, unique_names
from airflow_provider_musicai.jobs import raise_if_failed, validate_metadata

pytestmark = pytest.mark.airflow_independent

JOB_ID = "2e35babc-91c4-4121-89f4-5a2acf956b28"


def config(**extra: object) -> ConnectionConfig:
    return ConnectionConfig.from_connection(
        conn_id="c", host="http://127.0.0.1:9/v1", password="key", extra=json.dumps(extra)
    )


class TestConnectionConfig:
    def test_defaults_to_the_music_ai_cloud(self) -> None:
        parsed = ConnectionConfig.from_connection(conn_id="c", host=None, password="k")
        assert parsed.base_url == "https://api.music.ai/v1"
        assert parsed.retry.max_retries == 5

    def test_host_url_is_used_as_given_without_trailing_slash(self) -> None:
        assert config().base_url == "http://127.0.0.1:9/v1"

    def test_host_without_scheme_gets_https_and_v1(self) -> None:
        parsed = ConnectionConfig.from_connection(
            conn_id="c", host="api.example.com", password="k", port=8443
        )
        assert parsed.base_url == "https://api.example.com:8443/v1"

    def test_missing_key_names_the_password_field(self) -> None:
        with pytest.raises(MusicAIConfigurationError, match="password"):
            ConnectionConfig.from_connection(conn_id="c", host=None, password="")

    @pytest.mark.parametrize("host", ["ftp://x/v1", "http://user:pw@h/v1", "http://h/v1?x=1"])
    def test_unusable_hosts_are_refused(self, host: str) -> None:
        with pytest.raises(MusicAIConfigurationError, match="host"):
            ConnectionConfig.from_connection(conn_id="c", host=host, password="k")

    def test_extras_are_parsed_and_validated(self) -> None:
        parsed = config(timeout=3, max_retries="2", retry_backoff=0.5)
        assert (parsed.read_timeout, parsed.retry.max_retries, parsed.retry.backoff) == (3.0, 2, 0.5)
        with pytest.raises(MusicAIConfigurationError, match="max_retries"):
            config(max_retries=-1)
        with pytest.raises(MusicAIConfigurationError, match="timeout"):
            config(timeout="soon")

    def test_plain_http_to_a_remote_host_warns(self, caplog: pytest.LogCaptureFixture) -> None:
        ConnectionConfig.from_connection(conn_id="c", host="http://api.example.com/v1", password="k")
        assert "unencrypted" in caplog.text
        caplog.clear()
        config()
        assert "unencrypted" not in caplog.text

    def test_key_is_not_in_repr(self) -> None:
        assert "key" not in repr(config()).replace("api_key", "")

    @pytest.mark.parametrize(
        ("host", "loopback"),
        [
            ("127.0.0.1", True),
            ("127.9.9.9", True),
            ("::1", True),
            ("localhost", True),
            ("10.0.0.1", False),
            ("api.music.ai", False),
        ],
    )
    def test_loopback_detection(self, host: str, loopback: bool) -> None:
        assert is_loopback_host(host) is loopback


def drive(plan, outcomes):  # type: ignore[no-untyped-def]
    """Run a plan against scripted outcomes; return (result or exception, pauses taken, sends)."""
    pauses: list[float] = []
    sends = 0
    step = next(plan)
    try:
        while True:
            if isinstance(step, Pause):
                pauses.append(step.seconds)
                step = plan.send(None)
            else:
                sends += 1
                step = plan.send(outcomes.pop(0))
    except StopIteration as done:
        return done.value, pauses, sends
    except MusicAIError as error:
        return error, pauses, sends


def ok(body: object, status: int = 200) -> HttpAnswer:
    return HttpAnswer(status, json.dumps(body).encode(), "application/json")


POLICY = RetryPolicy(max_retries=3, backoff=1.0, max_wait=8.0, max_retry_time=60.0, rng=random.Random(1))


class TestCallPlan:
    def test_transient_failures_are_retried_with_growing_pauses(self) -> None:
        request = _api.build_request(_api.GET_JOB_STATUS, job_id=JOB_ID)
        outcomes = [HttpAnswer(503, b"", None), TransportFailure("reset", True), ok({"status": "QUEUED"})]
        result, pauses, sends = drive(call_plan(request, POLICY), outcomes)
        assert result == "QUEUED" and sends == 3
        assert 0.5 <= pauses[0] <= 1.0 and 1.0 <= pauses[1] <= 2.0

    def test_retry_after_is_honoured(self) -> None:
        request = _api.build_request(_api.GET_APPLICATION)
        outcomes = [HttpAnswer(429, b"{}", "application/json", retry_after=7.0), ok({"id": "a", "name": "n"})]
        result, pauses, _ = drive(call_plan(request, POLICY), outcomes)
        assert result == {"id": "a", "name": "n"} and pauses == [7.0]

    def test_retries_are_bounded(self) -> None:
        request = _api.build_request(_api.GET_APPLICATION)
        error, pauses, sends = drive(call_plan(request, POLICY), [HttpAnswer(500, b"", None)] * 10)
        assert isinstance(error, MusicAIServerError) and sends == 4 and len(pauses) == 3

    def test_retry_time_budget_is_bounded(self) -> None:
        short = RetryPolicy(max_retries=10, backoff=1.0, max_retry_time=1.0)
        request = _api.build_request(_api.GET_APPLICATION)
        outcomes = [HttpAnswer(429, b"", None, retry_after=30.0)] * 3
        error, _pauses, sends = drive(call_plan(request, short), outcomes)
        assert isinstance(error, MusicAIAPIError) and error.status_code == 429 and sends == 1

    @pytest.mark.parametrize(
        ("status", "error_type"),
        [
            (400, MusicAIInvalidRequestError),
            (401, MusicAIAuthError),
            (404, MusicAINotFoundError),
            (422, MusicAIInvalidRequestError),
        ],
    )
    def test_client_errors_are_never_retried(self, status: int, error_type: type[MusicAIAPIError]) -> None:
        request = _api.build_request(_api.GET_JOB, job_id=JOB_ID)
        body = json.dumps({"message": "nope"}).encode()
        error, pauses, sends = drive(
            call_plan(request, POLICY), [HttpAnswer(status, body, "application/json")]
        )
        assert type(error) is error_type and sends == 1 and pauses == []
        assert (
            error.api_message == "nope" and error.status_code == status and error.endpoint == "GET /job/{id}"
        )

    def test_post_job_is_not_resent_after_an_ambiguous_failure(self) -> None:
        request = _api.build_request(_api.CREATE_JOB, json_body={})
        error, _, sends = drive(call_plan(request, POLICY), [TransportFailure("reset", maybe_sent=True)])
        assert isinstance(error, AmbiguousRequestError) and sends == 1
        error, _, sends = drive(call_plan(request, POLICY), [HttpAnswer(502, b"<html>", "text/html")])
        assert isinstance(error, AmbiguousRequestError) and sends == 1

    def test_post_job_is_resent_when_surely_not_sent_or_rate_limited(self) -> None:
        request = _api.build_request(_api.CREATE_JOB, json_body={})
        outcomes = [
            TransportFailure("refused", maybe_sent=False),
            HttpAnswer(429, b"", None),
            ok({"id": JOB_ID}),
        ]
        result, _, sends = drive(call_plan(request, POLICY), outcomes)
        assert result == JOB_ID and sends == 3

    def test_delete_whose_first_answer_was_lost_counts_a_404_as_done(self) -> None:
        request = _api.build_request(_api.DELETE_JOB, job_id=JOB_ID)
        outcomes = [TransportFailure("reset", maybe_sent=True), HttpAnswer(404, b"{}", "application/json")]
        result, _, _ = drive(call_plan(request, POLICY), outcomes)
        assert result == JOB_ID
        error, _, _ = drive(call_plan(request, POLICY), [HttpAnswer(404, b"{}", "application/json")])
        assert isinstance(error, MusicAINotFoundError)

    def test_transport_errors_name_the_endpoint(self) -> None:
        request = _api.build_request(_api.GET_APPLICATION)
        error, _, _ = drive(
            call_plan(request, RetryPolicy(max_retries=0)), [TransportFailure("refused", False)]
        )
        assert isinstance(error, MusicAITransportError) and "GET /application" in str(error)


class TestInterpretation:
    def test_both_job_list_shapes_are_accepted(self) -> None:
        request = _api.build_request(_api.LIST_JOBS)
        jobs = [{"id": JOB_ID, "status": "QUEUED"}]
        assert _api.interpret_response(request, 200, json.dumps(jobs).encode(), None) == jobs
        assert _api.interpret_response(request, 200, json.dumps({"jobs": jobs}).encode(), None) == jobs

    def test_non_json_success_is_a_clear_error(self) -> None:
        request = _api.build_request(_api.GET_APPLICATION)
        with pytest.raises(MusicAIAPIError, match="not JSON"):
            _api.interpret_response(request, 200, b"<html>", "text/html")

    def test_wrong_shape_is_a_clear_error(self) -> None:
        request = _api.build_request(_api.GET_JOB, job_id=JOB_ID)
        with pytest.raises(MusicAIAPIError, match="status"):
            _api.interpret_response(request, 200, b'{"id": "x"}', "application/json")

    def test_proxy_html_error_page_is_described(self) -> None:
        error = _api.error_for_status("GET /job", 502, b"<html><body>Bad gateway</body></html>", "text/html")
        assert isinstance(error, MusicAIServerError) and "text/html" in str(error)

    def test_repeated_filters_become_repeated_parameters(self) -> None:
        request = _api.build_request(
            _api.LIST_JOBS, query=[("status", ["QUEUED", "STARTED"]), ("workflow", "w"), ("batchName", None)]
        )
        assert request.params == (("status", "QUEUED"), ("status", "STARTED"), ("workflow", "w"))

    @pytest.mark.parametrize("bad", ["", "../etc", "a/b", "x" * 200, None, 12, "id with space"])
    def test_malformed_job_ids_are_refused_before_sending(self, bad: object) -> None:
        with pytest.raises(MusicAIConfigurationError, match="Malformed Music AI job id"):
            _api.build_request(_api.GET_JOB, job_id=bad)  # type: ignore[arg-type]

    @settings(max_examples=300, deadline=None)
    @given(status=st.integers(100, 599), body=st.binary(max_size=300))
    def test_any_bytes_give_a_typed_error_or_a_value(self, status: int, body: bytes) -> None:
        for endpoint in (_api.GET_JOB, _api.LIST_JOBS, _api.CREATE_JOB, _api.GET_UPLOAD_URL):
            request = _api.build_request(endpoint, job_id=JOB_ID)
            with contextlib.suppress(MusicAIError):
                _api.interpret_response(request, status, body, "application/json")

    json_values = st.recursive(
        st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=10),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=20,
    )

    @settings(max_examples=300, deadline=None)
    @given(document=json_values, status=st.sampled_from([200, 201, 400, 404, 429, 500, 502]))
    def test_any_json_shape_gives_a_typed_error_or_a_value(self, document: object, status: int) -> None:
        body = json.dumps(document).encode()
        for endpoint in (
            _api.GET_JOB,
            _api.GET_JOB_STATUS,
            _api.LIST_JOBS,
            _api.LIST_WORKFLOWS,
            _api.CREATE_JOB,
        ):
            request = _api.build_request(endpoint, job_id=JOB_ID)
            with contextlib.suppress(MusicAIError):
                _api.interpret_response(request, status, body, "application/json")


class TestSmallHelpers:
    def test_redact_url_drops_the_signature(self) -> None:
        url = "https://storage.example.com/bucket/obj.wav?X-Signature=abc&X-Expires=1"
        assert redact_url(url) == "https://storage.example.com/bucket/obj.wav?<redacted>"
        assert redact_url("http://u:p@h:1/p") == "http://h:1/p"

    @pytest.mark.parametrize(
        ("key", "url", "name"),
        [
            ("vocals", "http://h/x/vocals.wav?sig=1", "vocals.wav"),
            ("../x", "http://h/a.wav", "x.wav"),
            ("/etc/passwd", "http://h/a", "etc_passwd"),
            ("..", "http://h/a.json", "result.json"),
            ("a b", "http://h/a.exe%00.wav", "a_b.wav"),
        ],
    )
    def test_safe_filename_never_leaves_the_folder(self, key: str, url: str, name: str) -> None:
        assert safe_filename(key, url) == name
        assert "/" not in safe_filename(key, url)

    def test_unique_names_resolve_collisions_and_reserve_result_json(self) -> None:
        chosen = unique_names(iter([("a", "x.wav"), ("b", "x.wav"), ("c", "result.json")]))
        assert chosen == {"a": "x.wav", "b": "x-2.wav", "c": "result-2.json"}

    def test_metadata_validation_names_the_key(self) -> None:
        assert validate_metadata({"a": 1, "b": "x", "c": True, "d": 1.5}) == {
            "a": 1,
            "b": "x",
            "c": True,
            "d": 1.5,
        }
        with pytest.raises(MusicAIConfigurationError, match=r"metadata\['nested'\]"):
            validate_metadata({"nested": {"x": 1}})
        with pytest.raises(MusicAIConfigurationError, match=r"metadata\['n'\]"):
            validate_metadata({"n": None})
        with pytest.raises(MusicAIConfigurationError, match="mapping"):
            validate_metadata(["a"])  # type: ignore[arg-type]

    def test_retry_after_parsing(self) -> None:
        assert parse_retry_after("3") == 3.0
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
        assert parse_retry_after("soon") is None

    def test_failed_job_error_carries_code_title_message_and_pickles(self) -> None:
        job = {
            "id": JOB_ID,
            "status": "FAILED",
            "error": {"code": "BAD_INPUT", "title": "Invalid input", "message": "File not found."},
        }
        with pytest.raises(MusicAIJobFailedError) as caught:
            raise_if_failed(job)
        error = caught.value
        assert (error.code, error.title, error.error_message) == (
            "BAD_INPUT",
            "Invalid input",
            "File not found.",
        )
        assert "BAD_INPUT" in str(error) and JOB_ID in str(error)
        copy = pickle.loads(pickle.dumps(error))
        assert str(copy) == str(error) and copy.code == "BAD_INPUT"

    def test_api_errors_pickle_with_their_fields(self) -> None:
        error = MusicAINotFoundError(
            "hint", status_code=404, endpoint="GET /job/{id}", api_message="Job not found"
        )
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is MusicAINotFoundError and copy.status_code == 404 and str(copy) == str(error)
        # What the retry policy reads: the 429's Retry-After, a transport failure's permanence.
        limited = MusicAIRateLimitError("hint", status_code=429, endpoint="GET /job", retry_after=7.0)
        assert pickle.loads(pickle.dumps(limited)).retry_after == 7.0
        tls = MusicAITransportError("no", endpoint="GET /application", permanent=True)
        assert pickle.loads(pickle.dumps(tls)).permanent is True


def test_http_library_log_records_lose_query_strings() -> None:
    import logging

    import httpx2

    from airflow_provider_musicai.common import RedactQueryStrings

    url = httpx2.URL("http://h/storage/x?X-Signature=secret")
    record = logging.LogRecord(
        "httpx2", logging.INFO, "f", 1, 'HTTP Request: %s %s "%s"', ("GET", url, 200), None
    )
    RedactQueryStrings().filter(record)
    assert "secret" not in record.getMessage()
    assert "http://h/storage/x?<redacted>" in record.getMessage()
    record = logging.LogRecord(
        "urllib3", logging.DEBUG, "f", 1, '"%s %s" %s', ("GET", "/x?sig=abc", 200), None
    )
    RedactQueryStrings().filter(record)
    assert record.getMessage() == '"GET /x?<redacted>" 200'


class TestOneTableOfExtras:
    """The connection form's ``CONN_FIELDS`` is the one source of the extras' defaults and minimums."""

    def test_every_numeric_field_parses_to_the_default_the_form_shows(self) -> None:
        from airflow_provider_musicai.get_provider_info import CONN_FIELDS

        parsed = ConnectionConfig.from_connection(conn_id="c", host=None, password="k")
        seen = {
            "timeout": parsed.read_timeout,
            "connect_timeout": parsed.connect_timeout,
            "max_retries": parsed.retry.max_retries,
            "retry_backoff": parsed.retry.backoff,
            "retry_max_wait": parsed.retry.max_wait,
            "retry_max_time": parsed.retry.max_retry_time,
            "transfer_min_rate": parsed.transfer.min_rate,
            "transfer_rate_window": parsed.transfer.rate_window,
            "transfer_max_time": parsed.transfer.max_time,
            "total_timeout": parsed.total_timeout,
            "max_response_bytes": parsed.max_response_bytes,
            "max_pages": parsed.max_pages,
        }
        numeric = {name for name, spec in CONN_FIELDS.items() if "minimum" in spec["schema"]}
        assert numeric == set(seen)
        assert all(seen[name] == CONN_FIELDS[name]["schema"]["default"] for name in numeric)

    def test_the_parser_reads_the_table(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from airflow_provider_musicai.get_provider_info import CONN_FIELDS

        monkeypatch.setitem(CONN_FIELDS["max_pages"]["schema"], "default", 7)
        monkeypatch.setitem(CONN_FIELDS["max_pages"]["schema"], "minimum", 3)
        assert ConnectionConfig.from_connection(conn_id="c", host=None, password="k").max_pages == 7
        with pytest.raises(MusicAIConfigurationError, match=r"'max_pages' must be a int >= 3"):
            config(max_pages=2)
