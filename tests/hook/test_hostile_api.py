"""API calls against servers that are not the emulator: a document that disagrees with the status
endpoint, a gzip bomb, an answer trickled forever, a document nested 900 levels deep, a listed job
without an id, redirected POST/DELETE, and job ids that are not ids."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import resource
from typing import Any

import pytest

from airflow_provider_musicai.exceptions import (
    MusicAIConfigurationError,
    MusicAIError,
    MusicAIMalformedResponseError,
    MusicAIRedirectError,
    MusicAIResponseTooLargeError,
    MusicAITransportError,
)
from airflow_provider_musicai.hooks._api import validate_job_id
from airflow_provider_musicai.triggers._poller import SharedJobPoller
from tests.helpers.hooks import KEY, HookOn, arun
from tests.helpers.hostile import HostileServer, Reply, Request

pytestmark = pytest.mark.airflow_independent

INPUT = {"inputUrl": "https://example.com/a.wav"}


def test_a_wait_returns_only_a_final_document(hook_on: HookOn) -> None:
    # The status endpoint says SUCCEEDED while the document (a lagging replica) still says QUEUED.
    fetches: list[str] = []

    def answer(request: Request) -> Reply:
        if request.path.endswith("/status"):
            return Reply(json_body={"id": "job-1", "status": "SUCCEEDED"})
        fetches.append(request.path)
        status = "QUEUED" if len(fetches) < 3 else "SUCCEEDED"
        return Reply(json_body={"id": "job-1", "status": status, "result": {}})

    with HostileServer(answer) as server:
        job = hook_on(server, max_retries=2).wait_for_job("job-1", poll_interval=0.01, timeout=60)
    assert job["status"] == "SUCCEEDED"
    assert len(fetches) == 3


def gzip_bomb(decoded_mib: int) -> bytes:
    """A gzip body of ~1/1000 its decoded size: ``decoded_mib`` MiB of a JSON string's spaces."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as handle:
        handle.write(b'{"id": "job-1", "status": "QUEUED", "pad": "')
        block = b" " * (1 << 20)
        for _ in range(decoded_mib):
            handle.write(block)
        handle.write(b'"}')
    return out.getvalue()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return gzip_bomb(256)  # 256 MiB once inflated, 0.25 MiB on the wire


def test_a_gzip_bomb_is_refused_within_the_cap_sync_and_async(hook_on: HookOn, bomb: bytes) -> None:
    headers = {"content-encoding": "gzip", "content-type": "application/json"}
    with HostileServer(lambda request: Reply(200, body=bomb, headers=headers)) as server:
        hook = hook_on(server, max_retries=2, max_response_bytes=4 << 20)
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with pytest.raises(MusicAIResponseTooLargeError, match="max_response_bytes=4194304"):
            hook.get_job("job-1")
        with pytest.raises(MusicAIResponseTooLargeError, match="max_response_bytes=4194304"):
            arun(
                hook_on(server, conn_id="other", max_retries=2, max_response_bytes=4 << 20).aget_job("job-1")
            )
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
        assert len(server.requests) == 2  # refused, not retried: the same request gets the same answer
    assert grown_mib < 128, f"peak RSS grew {grown_mib:.0f} MiB reading a capped answer"


def test_an_answer_trickled_forever_is_bounded_by_total_timeout_sync_and_async(
    hook_on: HookOn,
) -> None:
    document = {"id": "job-1", "status": "QUEUED", "pad": " " * 600}  # ~2 min at 5 bytes/s
    trickle = Reply(200, json_body=document, trickle=0.2)
    with HostileServer(lambda request: trickle) as server:
        extras = {"total_timeout": 0.5, "max_retries": 1}
        hook = hook_on(server, **extras)
        with pytest.raises(MusicAITransportError, match=r"total_timeout=0\.5s"):
            hook.get_job("job-1")
        with pytest.raises(MusicAITransportError, match=r"total_timeout=0\.5s"):
            arun(hook_on(server, conn_id="other", **extras).aget_job("job-1"))
        assert len(server.requests) == 4  # transient: each call was retried once


def nested(depth: int) -> bytes:
    return b'{"id": "job-1", "status": "SUCCEEDED", "result": {"x": ' + b"[" * depth + b"]" * depth + b"}}"


def test_a_document_nested_900_levels_is_a_typed_error_everywhere(hook_on: HookOn) -> None:
    deep = Reply(200, body=nested(900), headers={"content-type": "application/json"})
    with HostileServer(lambda request: deep) as server:
        hook = hook_on(server, max_retries=2)
        with pytest.raises(MusicAIMalformedResponseError, match="deeper than 64 levels"):
            hook.get_job("job-1")
        with pytest.raises(MusicAIMalformedResponseError, match="deeper than 64 levels"):
            arun(hook.aget_job("job-1"))
        poller = SharedJobPoller(
            hook_on(server, conn_id="other", max_retries=2), 0.01, max_consecutive_failures=2
        )
        with pytest.raises(MusicAIError, match="deeper than 64 levels"):
            arun(asyncio.wait_for(poller.wait("job-1", None), 60))


def test_a_listed_job_without_id_after_a_lost_post_answer_is_a_typed_error(
    hook_on: HookOn,
) -> None:
    def answer(request: Request) -> Reply:
        if request.method == "POST":
            return Reply(drop=True)
        return Reply(json_body={"jobs": [{"status": "QUEUED", "metadata": {}}]})

    with HostileServer(answer) as server:
        hook = hook_on(server, max_retries=2)
        with pytest.raises(MusicAIError, match=r"could not be checked.*listed job #0 has no valid 'id'"):
            hook.create_job("song", "wf", INPUT)
        assert len(server.requests_to("POST")) == 1


class Redirector:
    """Redirects every request to ``target`` with ``status``."""

    def __init__(self, status: int, target: HostileServer) -> None:
        self.status, self.target = status, target

    def __call__(self, request: Request) -> Reply:
        return Reply(self.status, headers={"location": self.target.url(request.path)})


@pytest.mark.parametrize("status", [307, 308])
def test_a_redirected_post_or_delete_is_never_followed(hook_on: HookOn, status: int) -> None:
    elsewhere_answers = lambda request: Reply(json_body={"id": "job-1"})  # noqa: E731
    with HostileServer(elsewhere_answers) as elsewhere, HostileServer(Redirector(status, elsewhere)) as api:
        hook = hook_on(api, max_retries=2)
        with pytest.raises(MusicAIRedirectError, match=rf"POST /job failed \(HTTP {status}\)"):
            hook.create_job("song", "wf", INPUT)
        with pytest.raises(MusicAIRedirectError, match=r"DELETE /job/\{id\} failed"):
            hook.delete_job("job-1")
        with pytest.raises(MusicAIRedirectError, match=r"DELETE /job/\{id\} failed"):
            arun(hook_on(api, conn_id="other", max_retries=2).adelete_job("job-1"))
        assert elsewhere.requests == []
        assert len(api.requests) == 3  # not retried either


def test_a_redirected_get_is_followed_without_the_key(hook_on: HookOn) -> None:
    document = {"id": "job-1", "status": "QUEUED"}
    with (
        HostileServer(lambda request: Reply(json_body=document)) as elsewhere,
        HostileServer(Redirector(302, elsewhere)) as api,
    ):
        hook = hook_on(api, max_retries=2)
        assert hook.get_job("job-1") == document
        assert arun(hook_on(api, conn_id="other", max_retries=2).aget_job("job-1")) == document
        assert len(elsewhere.requests) == 2
        assert all(
            "authorization" not in r.headers and KEY not in json.dumps(r.headers) for r in elsewhere.requests
        )


@pytest.mark.parametrize("job_id", ["job-1\n", "job-1 ", "", "../job-1", "a" * 129])
def test_job_ids_are_matched_whole(job_id: str) -> None:
    with pytest.raises(MusicAIConfigurationError, match="Malformed Music AI job id"):
        validate_job_id(job_id)


@pytest.mark.parametrize("returned", ["job-1\n", "../../admin", "", 42, "x" * 200])
def test_an_invalid_id_from_post_job_is_typed_and_never_resent(hook_on: HookOn, returned: Any) -> None:
    with HostileServer(lambda request: Reply(json_body={"id": returned})) as server:
        hook = hook_on(server, max_retries=2)
        with pytest.raises(MusicAIMalformedResponseError, match="MAY have been created") as caught:
            hook.create_job("song", "wf", INPUT, idempotency_key="key-7")
        assert "airflowIdempotencyKey=key-7" in str(caught.value)
        assert len(server.requests_to("POST")) == 1


def test_answers_within_the_caps_still_read_whole(hook_on: HookOn) -> None:
    document = {"id": "job-1", "status": "QUEUED", "pad": "x" * 500_000}
    body = gzip.compress(json.dumps(document).encode())
    headers = {"content-encoding": "gzip", "content-type": "application/json"}
    with HostileServer(lambda request: Reply(200, body=body, headers=headers)) as server:
        hook = hook_on(server, max_retries=2)
        assert hook.get_job("job-1") == document
        assert arun(hook.aget_job("job-1")) == document


def test_an_oversized_post_job_answer_says_the_job_may_exist(hook_on: HookOn, bomb: bytes) -> None:
    headers = {"content-encoding": "gzip", "content-type": "application/json"}
    with HostileServer(lambda request: Reply(200, body=bomb, headers=headers)) as server:
        hook = hook_on(server, max_retries=2, max_response_bytes=1 << 20)
        with pytest.raises(MusicAIMalformedResponseError, match=r"MAY have been created.*max_response_bytes"):
            hook.create_job("song", "wf", INPUT)
        assert len(server.requests_to("POST")) == 1
