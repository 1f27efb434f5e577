"""One retry policy drives every retry: POST /job's idempotency lookup is a step of
:mod:`airflow_provider_musicai.hooks._calls`, carried out by ``run_sync``/``run_async``, and transfers
are attempted again under the same policy by the storage client."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from typing import Any

import pytest
import requests

from airflow_provider_musicai.exceptions import MusicAIError, MusicAITransportError
from airflow_provider_musicai.hooks import _api
from airflow_provider_musicai.hooks._calls import (
    HttpAnswer,
    Lookup,
    MusicAILookupFailedError,
    TransportFailure,
    call_plan,
    run_async,
    run_sync,
)
from airflow_provider_musicai.hooks._config import ConnectionConfig, RetryPolicy
from airflow_provider_musicai.hooks._storage import StorageClient, _RetryableTransfer

POLICY = RetryPolicy(max_retries=3, backoff=0.001, max_wait=0.002, max_retry_time=60.0, rng=random.Random(1))
CREATE = _api.build_request(_api.CREATE_JOB, json_body={"name": "n", "workflow": "w", "params": {}})


def lookup_by(send: Any) -> Lookup:
    """A lookup whose finder is answered by the scripted ``send`` (so it is recorded as a step)."""

    def find() -> Any:
        return send(lookup)

    lookup = Lookup("checking whether the job exists", find)
    return lookup


def async_lookup_by(send: Any) -> Lookup:
    """The same for the async driver, which awaits what the finder returns."""

    async def find() -> Any:
        return send(lookup)

    lookup = Lookup("checking whether the job exists", find)
    return lookup


def scripted(answers: list[Any]) -> tuple[list[Any], Any]:
    """A ``send`` that records each step and answers from ``answers`` (an exception is raised)."""
    steps: list[Any] = []

    def send(step: Any) -> Any:
        steps.append(step)
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return steps, send


def created(job_id: str) -> HttpAnswer:
    return HttpAnswer(200, json.dumps({"id": job_id}).encode(), "application/json")


def test_a_lost_post_answer_is_looked_up_and_the_found_job_ends_the_plan() -> None:
    steps, send = scripted([TransportFailure("reset", maybe_sent=True), "job-1"])
    assert run_sync(call_plan(CREATE, POLICY, lookup=lookup_by(send)), send) == "job-1"
    assert [type(step).__name__ for step in steps] == ["ApiRequest", "Lookup"]


def test_nothing_found_sends_again_after_a_pause() -> None:
    steps, send = scripted([HttpAnswer(502, b"", None), None, created("job-2")])
    assert run_sync(call_plan(CREATE, POLICY, lookup=lookup_by(send)), send) == "job-2"
    assert [type(step).__name__ for step in steps] == ["ApiRequest", "Lookup", "ApiRequest"]


def test_a_failed_lookup_never_sends_again() -> None:
    steps, send = scripted([TransportFailure("reset", maybe_sent=True), MusicAIError("listing broke")])
    with pytest.raises(MusicAILookupFailedError, match=r"could not be checked \(listing broke\)"):
        run_sync(call_plan(CREATE, POLICY, lookup=lookup_by(send)), send)
    assert len(steps) == 2


def test_the_async_driver_carries_out_the_same_lookup() -> None:
    steps, send = scripted([TransportFailure("reset", maybe_sent=True), None, created("job-3")])

    async def asend(step: Any) -> Any:
        return send(step)

    assert asyncio.run(run_async(call_plan(CREATE, POLICY, lookup=async_lookup_by(send)), asend)) == "job-3"
    assert [type(step).__name__ for step in steps] == ["ApiRequest", "Lookup", "ApiRequest"]


@dataclasses.dataclass(frozen=True)
class Attempt:
    """The number (0 first) of one scripted transfer attempt."""

    number: int


def transfer(answers: list[Any]) -> tuple[list[Attempt], StorageClient, Any]:
    """A storage client under :data:`POLICY` and a transfer ``action`` that records each attempt and
    answers from ``answers``: a :class:`_RetryableTransfer` fails it retryably, another error ends it."""
    config = ConnectionConfig.from_connection(conn_id="musicai_default", host=None, password="k")
    client = StorageClient(dataclasses.replace(config, retry=POLICY), requests.Session())
    steps: list[Attempt] = []

    def action() -> Any:
        steps.append(Attempt(len(steps)))
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return steps, client, action


def test_a_transfer_is_attempted_again_until_one_attempt_completes() -> None:
    failure = _RetryableTransfer(MusicAITransportError("cut", endpoint="PUT"), retry_after=0.001)
    steps, client, action = transfer([failure, failure, "https://x/y"])
    assert client._retrying(action, "Upload") == "https://x/y"
    assert steps == [Attempt(0), Attempt(1), Attempt(2)]


def test_a_transfer_gives_up_with_the_last_error_once_the_budget_is_spent() -> None:
    failures = [_RetryableTransfer(MusicAITransportError(f"cut {n}", endpoint="PUT")) for n in range(4)]
    steps, client, action = transfer(failures)
    with pytest.raises(MusicAITransportError, match="cut 3"):
        client._retrying(action, "Upload")
    assert len(steps) == 4


def test_an_error_raised_by_an_attempt_ends_the_transfer_at_once() -> None:
    steps, client, action = transfer([MusicAIError("403, no fresh URL")])
    with pytest.raises(MusicAIError, match="403"):
        client._retrying(action, "Download")
    assert len(steps) == 1
