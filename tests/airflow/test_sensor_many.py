"""MusicAIJobSensor on a list of jobs or a batch: poke, deferrable (one MusicAIJobsTrigger through the
shared poller), fail_fast, and the workflow learnt before deferring."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests

from airflow_provider_musicai.exceptions import MusicAIJobFailedError, MusicAIJobsFailedError
from airflow_provider_musicai.sensors.musicai import MusicAIJobSensor
from airflow_provider_musicai.triggers.musicai import MusicAIJobsTrigger, MusicAIJobTrigger
from tests.helpers.reliability import wait_until_async

STEMS = "music-ai/stems-vocals-accompaniment"


def sensor(**kwargs: Any) -> MusicAIJobSensor:
    return MusicAIJobSensor(task_id="wait", poll_interval=0.2, timeout=60, **kwargs)


def jobs(hook: Any, input_url: Any, count: int) -> list[str]:
    return [str(hook.create_job(f"many {n}", STEMS, {"inputUrl": input_url()})) for n in range(count)]


def batch_job(musicai: Any, url: str, batch: str) -> str:
    """A job in a batch (the hook has no batch argument: the API documents none, see the evidence)."""
    from airflow_provider_musicai.hooks.musicai import MusicAIHook

    url = MusicAIHook().resolve_references(url)  # posted directly, not through the hook
    answer = requests.post(
        f"{musicai.api_url}/job",
        json={"name": "batched", "workflow": STEMS, "params": {"inputUrl": url}, "batchName": batch},
        headers={"Authorization": musicai.api_key},
        timeout=10,
    )
    answer.raise_for_status()
    return str(answer.json()["id"])


def run_trigger(trigger: MusicAIJobsTrigger) -> list[Any]:
    async def run() -> list[Any]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(run())


def test_poke_mode_waits_for_every_job_and_returns_their_documents_in_order(
    hook: Any, input_url: Any, make_context: Any
) -> None:
    ids = jobs(hook, input_url, 3)
    documents = sensor(job_id=[{"id": ids[0]}, ids[1], ids[2], None]).execute(make_context())
    assert [job["id"] for job in documents] == ids
    assert all(job["status"] == "SUCCEEDED" and "?" not in str(job["result"]) for job in documents)


def test_batch_name_waits_for_the_batch(musicai: Any, hook: Any, input_url: Any, make_context: Any) -> None:
    ids = sorted(batch_job(musicai, input_url(), "nightly") for _ in range(2))
    jobs(hook, input_url, 1)  # not in the batch
    documents = sensor(batch_name="nightly").execute(make_context())
    assert sorted(job["id"] for job in documents) == ids


def test_fail_fast_raises_on_the_first_failed_job(
    musicai: Any, hook: Any, input_url: Any, make_context: Any
) -> None:
    musicai.admin.fail_jobs(1, code="TIMEOUT")
    ids = jobs(hook, input_url, 2)
    with pytest.raises(MusicAIJobFailedError) as caught:
        sensor(job_id=ids).execute(make_context())
    assert caught.value.job_id == ids[0] and caught.value.code == "TIMEOUT"


def test_without_fail_fast_every_document_is_kept_and_the_task_fails_at_the_end(
    musicai: Any, hook: Any, input_url: Any, make_context: Any
) -> None:
    musicai.admin.fail_jobs(1, code="TIMEOUT")
    ids = jobs(hook, input_url, 2)
    context = make_context()
    with pytest.raises(MusicAIJobsFailedError) as caught:
        sensor(job_id=ids, fail_fast=False).execute(context)
    assert [error.job_id for error in caught.value.failures] == [ids[0]]
    assert [job["status"] for job in context["ti"].xcoms["jobs"]] == ["FAILED", "SUCCEEDED"]


def test_deferrable_many_jobs_use_one_trigger_with_their_workflows(
    musicai: Any, hook: Any, input_url: Any, make_context: Any
) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    musicai.admin.configure(queued_seconds=1.5)
    ids = jobs(hook, input_url, 3)
    with pytest.raises(TaskDeferred) as caught:
        sensor(job_id=ids, deferrable=True).execute(make_context())
    trigger = caught.value.trigger
    assert isinstance(trigger, MusicAIJobsTrigger)
    kwargs = trigger.serialize()[1]
    assert kwargs["job_ids"] == ids and kwargs["workflows"] == dict.fromkeys(ids, STEMS)
    [event] = run_trigger(trigger)
    assert event["status"] == "success" and [job["id"] for job in event["jobs"]] == ids
    documents = sensor(job_id=ids, deferrable=True).execute_complete(make_context(), event)
    assert [job["status"] for job in documents] == ["SUCCEEDED"] * 3


@pytest.mark.parametrize("fail_fast", [True, False])
def test_the_trigger_reports_a_failed_job_at_once_or_at_the_end(
    musicai: Any, hook: Any, input_url: Any, make_context: Any, fail_fast: bool
) -> None:
    musicai.admin.fail_jobs(1, code="BAD_INPUT")
    ids = jobs(hook, input_url, 2)
    [event] = run_trigger(MusicAIJobsTrigger(job_ids=ids, poll_interval=0.2, fail_fast=fail_fast))
    assert event["status"] == "error" and event["failed"] == [ids[0]]
    reported = {job["id"] for job in event["jobs"]}
    assert ids[0] in reported if fail_fast else reported == set(ids)
    expected = MusicAIJobFailedError if fail_fast else MusicAIJobsFailedError
    with pytest.raises(expected):
        sensor(job_id=ids, fail_fast=fail_fast, deferrable=True).execute_complete(make_context(), event)


def test_the_trigger_times_out_at_the_deadline(
    musicai: Any, hook: Any, input_url: Any, make_context: Any
) -> None:
    import time

    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    musicai.admin.configure(queued_seconds=60)
    ids = jobs(hook, input_url, 2)
    [event] = run_trigger(MusicAIJobsTrigger(job_ids=ids, poll_interval=0.2, deadline=time.time() + 1))
    assert event["status"] == "timeout" and event["jobs"] == []
    with pytest.raises(AirflowSensorTimeout):
        sensor(job_id=ids, deferrable=True).execute_complete(make_context(), event)


def test_one_job_deferral_passes_the_workflow_learnt_before_deferring(
    musicai: Any, hook: Any, input_url: Any, make_context: Any
) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    musicai.admin.configure(queued_seconds=60)
    [job_id] = jobs(hook, input_url, 1)
    before = musicai.admin.counters()["requests_total"]
    with pytest.raises(TaskDeferred) as caught:
        sensor(job_id=job_id, deferrable=True).execute(make_context())
    assert musicai.admin.counters()["requests_total"] - before == 1  # one request either way
    trigger = caught.value.trigger
    assert isinstance(trigger, MusicAIJobTrigger) and trigger.serialize()[1]["workflow"] == STEMS


def test_exactly_one_of_job_id_and_batch_name() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        MusicAIJobSensor(task_id="x")
    with pytest.raises(ValueError, match="exactly one"):
        MusicAIJobSensor(task_id="x", job_id="a", batch_name="b")


def test_reschedule_mode_and_a_mapped_upstream_through_dag_test(
    airflow_db: str, musicai: Any, hook: Any, input_url: Any
) -> None:
    from tests.helpers.airflow import (
        TEST_DAGS,
        completed_after_a_reschedule,
        load_dag_file,
        run_dag,
        task_states,
        xcom_value,
    )

    module = load_dag_file(TEST_DAGS / "musicai_link_dags.py")
    musicai.admin.configure(manual_clock=True)
    ids = jobs(hook, input_url, 2)
    with completed_after_a_reschedule(musicai, ids):
        dag_run = run_dag(module.many, {"job_ids": ids})
    assert task_states(dag_run) == {"wait": "success"}
    assert [job["id"] for job in xcom_value(dag_run, "wait")] == ids
    musicai.admin.configure(manual_clock=False, queued_seconds=0, processing_seconds=0.1)
    dag_run = run_dag(module.links, {"urls": [input_url(), input_url()]})
    assert task_states(dag_run)["many"] == "success"  # job_id=mapped.output: a deferred many-job wait
    mapped = [xcom_value(dag_run, "mapped", "job_id", map_index=index) for index in (0, 1)]
    assert [job["id"] for job in xcom_value(dag_run, "many")] == mapped


def test_the_trigger_kwargs_are_plain_and_round_trip(musicai: Any) -> None:
    import json

    from airflow.serialization.serialized_objects import BaseSerialization

    trigger = MusicAIJobsTrigger(
        job_ids=["a", "b", "a"], poll_interval=2, deadline=1_900_000_000.0, workflows={"a": STEMS}
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_musicai.triggers.musicai.MusicAIJobsTrigger"
    assert kwargs["job_ids"] == ["a", "b"] and kwargs["workflows"] == {"a": STEMS}
    text = json.dumps(kwargs)
    assert musicai.api_key not in text and "http" not in text
    restored = BaseSerialization.deserialize(BaseSerialization.serialize(kwargs))
    assert MusicAIJobsTrigger(**restored).serialize() == (classpath, kwargs)


def test_cancelling_the_trigger_leaves_no_waiter_in_the_shared_poller(
    musicai: Any, hook: Any, input_url: Any
) -> None:
    from airflow_provider_musicai.triggers._poller import shared_poller

    musicai.admin.configure(queued_seconds=60)
    ids = jobs(hook, input_url, 2)

    async def run_then_cancel() -> int:
        trigger = MusicAIJobsTrigger(job_ids=ids, poll_interval=0.2)
        task = asyncio.ensure_future(trigger.run().__anext__())
        poller = shared_poller("musicai_default", 0.2, 5)
        await wait_until_async("the trigger to wait on both jobs", lambda: poller.waiting == 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_until_async("the waiters to leave", lambda: poller.waiting == 0)
        return poller.waiting

    assert asyncio.run(run_then_cancel()) == 0
