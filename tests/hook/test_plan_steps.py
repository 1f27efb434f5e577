"""The one retry plan drives every retry: POST /job's idempotency lookup and transfers are steps of
:mod:`airflow_provider_musicai.hooks._calls`, carried out by ``run_sync``/``run_async``."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest

from airflow_provider_musicai.exceptions import MusicAIError, MusicAITransportError
from airflow_provider_musicai.hooks import _api
from airflow_provider_musicai.hooks._calls import (
    Attempt,
    Completed,
    HttpAnswer,
    Lookup,
    MusicAILookupFailedError,
    RetryableFailure,
    TransportFailure,
    call_plan,
    run_async,
    run_sync,
    transfer_plan,
)
from airflow_provider_musicai.hooks._config import RetryPolicy

POLICY = RetryPolicy(max_retries=3, backoff=0.001, max_wait=0.002, max_retry_time=60.0, rng=random.Random(1))
CREATE = _api.build_request(_api.CREATE_JOB, json_body={"name": "n", "workflow": "w", "params": {}})
LOOKUP = Lookup("checking whether the job exists")


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
    assert run_sync(call_plan(CREATE, POLICY, lookup=LOOKUP), send) == "job-1"
    assert [type(step).__name__ for step in steps] == ["ApiRequest", "Lookup"]


def test_nothing_found_sends_again_after_a_pause() -> None:
    steps, send = scripted([HttpAnswer(502, b"", None), None, created("job-2")])
    assert run_sync(call_plan(CREATE, POLICY, lookup=LOOKUP), send) == "job-2"
    assert [type(step).__name__ for step in steps] == ["ApiRequest", "Lookup", "ApiRequest"]


def test_a_failed_lookup_never_sends_again() -> None:
    steps, send = scripted([TransportFailure("reset", maybe_sent=True), MusicAIError("listing broke")])
    with pytest.raises(MusicAILookupFailedError, match=r"could not be checked \(listing broke\)"):
        run_sync(call_plan(CREATE, POLICY, lookup=LOOKUP), send)
    assert len(steps) == 2


def test_the_async_driver_carries_out_the_same_lookup() -> None:
    steps, send = scripted([TransportFailure("reset", maybe_sent=True), None, created("job-3")])

    async def asend(step: Any) -> Any:
        return send(step)

    assert asyncio.run(run_async(call_plan(CREATE, POLICY, lookup=LOOKUP), asend)) == "job-3"
    assert [type(step).__name__ for step in steps] == ["ApiRequest", "Lookup", "ApiRequest"]


def test_a_transfer_is_attempted_again_until_one_attempt_completes() -> None:
    failure = RetryableFailure(MusicAITransportError("cut", endpoint="PUT"), retry_after=0.001)
    steps, send = scripted([failure, failure, Completed("https://x/y")])
    assert run_sync(transfer_plan("Upload", POLICY), send) == "https://x/y"
    assert steps == [Attempt(0), Attempt(1), Attempt(2)]


def test_a_transfer_gives_up_with_the_last_error_once_the_budget_is_spent() -> None:
    failures = [RetryableFailure(MusicAITransportError(f"cut {n}", endpoint="PUT")) for n in range(4)]
    steps, send = scripted(failures)
    with pytest.raises(MusicAITransportError, match="cut 3"):
        run_sync(transfer_plan("Upload", POLICY), send)
    assert len(steps) == 4


def test_an_error_raised_by_an_attempt_ends_the_transfer_at_once() -> None:
    steps, send = scripted([MusicAIError("403, no fresh URL")])
    with pytest.raises(MusicAIError, match="403"):
        run_sync(transfer_plan("Download", POLICY), send)
    assert len(steps) == 1
