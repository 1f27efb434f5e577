"""A server that echoes the API key (in an error message, a FAILED job's error, a status, a name)
never gets it into an exception, a log line, a test_connection message or a trigger event; and
control characters in server text cannot forge log lines. Sync and async paths."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_musicai.exceptions import (
    MusicAIError,
    MusicAIJobFailedError,
    MusicAINotFoundError,
    MusicAIServerError,
)
from tests.helpers.hooks import HookOn, arun
from tests.helpers.hostile import HostileServer, Reply, Request

KEY = "mk-live-Echoed/Key+0123456789abcdef"


@pytest.fixture
def hook_on(hook_on: HookOn) -> HookOn:
    """Hooks on a connection ``musicai_echo`` to a hostile server, with the key ``KEY`` (2 retries)."""
    return functools.partial(hook_on, key=KEY, conn_id="musicai_echo", max_retries=2)


def echo_error(status: int) -> Callable[[Request], Reply]:
    """Answers every request with ``status`` and an error message quoting the request's key."""

    def answer(request: Request) -> Reply:
        key = request.headers.get("authorization", "")
        return Reply(status, json_body={"message": f"Invalid request for key {key}\nINFO - forged"})

    return answer


def failed_job(request: Request) -> Reply:
    if request.path == "/v1/job":  # the shared poller's listing of active jobs
        return Reply(200, json_body={"jobs": []})
    key = request.headers.get("authorization", "")
    return Reply(
        200,
        json_body={
            "id": "job-1",
            "name": f"job of {key}",
            "workflow": "wf",
            "status": "FAILED",
            "error": {"code": "BAD", "title": f"key {key}", "message": f"Failed for {key}\n[ERROR] forged"},
        },
    )


def assert_clean(text: str) -> None:
    assert KEY not in text and "Echoed" not in text, text
    assert "\n" not in text and "\r" not in text, text


def logged(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    """Everything logged: stdlib records and what structlog (Airflow 3's task loggers) printed."""
    out, err = capfd.readouterr()
    return "\n".join([out, err, *(record.getMessage() for record in caplog.records)])


def assert_no_forged_line(text: str) -> None:
    assert "STARTED\\n2026-01-01" in text, text  # the status was logged, escaped
    assert "\n2026-01-01 INFO" not in text and "\x1b" not in text, text


def test_an_api_error_quoting_the_key_sync(
    hook_on: HookOn, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    with HostileServer(echo_error(404)) as server:
        with pytest.raises(MusicAINotFoundError) as raised:
            hook_on(server).get_job("job-1")
        assert server.requests[0].headers["authorization"] == KEY  # the key did reach the API
    assert_clean(str(raised.value))
    assert_clean(raised.value.api_message or "")
    assert "<redacted API key>" in str(raised.value) and "\\nINFO - forged" in str(raised.value)
    assert KEY not in logged(caplog, capfd)


def test_an_api_error_quoting_the_key_async(hook_on: HookOn) -> None:
    with HostileServer(echo_error(404)) as server, pytest.raises(MusicAINotFoundError) as raised:
        asyncio.run(hook_on(server).aget_job("job-1"))
    assert_clean(str(raised.value))
    assert "<redacted API key>" in str(raised.value)


def test_retry_log_lines_and_the_final_error_do_not_show_the_key(
    hook_on: HookOn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="airflow_provider_musicai")
    with HostileServer(echo_error(503)) as server:
        with pytest.raises(MusicAIServerError) as raised:
            hook_on(server).get_application()
        assert len(server.requests) == 3
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2
    for line in [*retries, str(raised.value)]:
        assert_clean(line)


def test_retry_log_lines_async(hook_on: HookOn, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="airflow_provider_musicai")
    with HostileServer(echo_error(503)) as server, pytest.raises(MusicAIServerError) as raised:
        asyncio.run(hook_on(server).aget_application())
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2
    for line in [*retries, str(raised.value)]:
        assert_clean(line)


def test_test_connection_message_does_not_show_the_key(hook_on: HookOn) -> None:
    with HostileServer(echo_error(401)) as server:
        ok, message = hook_on(server).test_connection()
    assert not ok and "HTTP 401" in message
    assert_clean(message)


def test_an_application_name_quoting_the_key(hook_on: HookOn) -> None:
    def answer(request: Request) -> Reply:
        return Reply(200, json_body={"id": "app", "name": f"app of {request.headers['authorization']}"})

    with HostileServer(answer) as server:
        ok, message = hook_on(server).test_connection()
        application = asyncio.run(hook_on(server).aget_application())
    assert ok and KEY not in message and "<redacted API key>" in message
    assert application["name"] == "app of <redacted API key>"


def test_a_key_hidden_by_json_escapes_is_found(hook_on: HookOn) -> None:
    """A server may escape any character of a JSON string; the key is still recognized."""

    def answer(request: Request) -> Reply:
        escaped = "".join(f"\\u{ord(char):04x}" for char in request.headers["authorization"])
        return Reply(404, body=b'{"message": "key ' + escaped.encode() + b'"}')

    with HostileServer(answer) as server, pytest.raises(MusicAINotFoundError) as raised:
        hook_on(server).get_job("job-1")
    assert KEY not in str(raised.value) and "<redacted API key>" in str(raised.value)


def test_a_non_json_error_body_quoting_the_key(hook_on: HookOn) -> None:
    def answer(request: Request) -> Reply:
        key = request.headers["authorization"]
        return Reply(200, body=f"<html>{key}</html>".encode(), headers={"content-type": f"text/{key}"})

    with HostileServer(answer) as server, pytest.raises(MusicAIError) as raised:
        hook_on(server).get_job("job-1")
    assert KEY not in str(raised.value)


def test_a_failed_job_quoting_the_key_sync(
    hook_on: HookOn, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with HostileServer(failed_job) as server:
        hook = hook_on(server)
        job = hook.get_job("job-1")
        assert KEY not in json.dumps(job)  # what an operator would push to XCom
        with pytest.raises(MusicAIJobFailedError) as raised:
            hook.wait_for_job("job-1", poll_interval=0.01)
    assert_clean(str(raised.value))
    assert KEY not in logged(caplog, capfd)


async def first_trigger_event() -> Any:
    """The first event of a trigger on job ``job-1`` through the connection ``musicai_echo``."""
    from airflow_provider_musicai.triggers.musicai import MusicAIJobTrigger

    trigger = MusicAIJobTrigger("job-1", musicai_conn_id="musicai_echo", poll_interval=0.05)
    return await asyncio.wait_for(anext(trigger.run()), timeout=60)


def test_a_failed_job_quoting_the_key_in_the_trigger_event(hook_on: HookOn) -> None:
    with HostileServer(failed_job) as server:
        hook_on(server)
        event = arun(first_trigger_event())
    assert event.payload["status"] == "error"
    stored = json.dumps(event.payload)  # what Airflow writes to its database and logs
    assert KEY not in stored and "Echoed" not in stored
    assert "\n" not in event.payload["message"] and "\\n[ERROR] forged" in event.payload["message"]


def statuses_then_done(statuses: list[str]) -> Callable[[Request], Reply]:
    """Serves ``statuses`` one poll at a time, then SUCCEEDED, for both /status and the job."""
    served: list[str] = []

    def answer(request: Request) -> Reply:
        if request.path == "/v1/job":  # the shared poller's listing of active jobs
            return Reply(200, json_body={"jobs": []})
        status = statuses[len(served)] if len(served) < len(statuses) else "SUCCEEDED"
        served.append(status)
        if request.path.endswith("/status"):
            return Reply(200, json_body={"status": status})
        return Reply(200, json_body={"id": "job-1", "workflow": "wf", "status": status, "result": {}})

    return answer


FORGED = "STARTED\n2026-01-01 INFO - Music AI job job-1 is SUCCEEDED\x1b[2K"


def test_a_status_with_a_line_break_cannot_forge_a_log_line_sync(
    hook_on: HookOn, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    with HostileServer(statuses_then_done([FORGED, FORGED])) as server:
        hook_on(server).wait_for_job("job-1", poll_interval=0.01)
    assert_no_forged_line(logged(caplog, capfd))


def test_a_status_with_a_line_break_cannot_forge_a_trigger_log_line(
    hook_on: HookOn, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)

    with HostileServer(statuses_then_done([FORGED, FORGED])) as server:
        hook_on(server)
        event = arun(first_trigger_event())
    assert event.payload["status"] == "success"
    assert_no_forged_line(logged(caplog, capfd))
