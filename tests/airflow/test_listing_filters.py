"""What a listing says is not trusted for what it was asked: against a ``GET /job`` that ignores its
status, workflow and batch filters, each listed job's own fields decide (the deferred wait, the
catalog's worker-side wait, the batch sensor, the idempotency-key lookup)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.hooks import HookOn, arun
from tests.helpers.hostile import HostileServer, JobListingAPI
from tests.helpers.reliability import wait_until_async

CONN = "musicai_test"


@pytest.fixture
def api() -> JobListingAPI:
    """Lists every job whatever it is asked; 30 listings at most (a client that keeps waiting on a
    finished job gets a 401 then, instead of hanging the test)."""
    return JobListingAPI(honour_status=False, max_listings=30)


@pytest.fixture
def server(api: JobListingAPI, hook_on: HookOn) -> Iterator[HostileServer]:
    with HostileServer(api) as running:
        hook_on(running, conn_id=CONN, max_retries=1)
        yield running


@pytest.mark.parametrize(("status", "event"), [("SUCCEEDED", "success"), ("FAILED", "error")])
def test_the_deferred_wait_ends_with_the_jobs_own_status(
    api: JobListingAPI, server: HostileServer, status: str, event: str
) -> None:
    from airflow_provider_musicai.triggers._poller import shared_poller
    from airflow_provider_musicai.triggers.musicai import MusicAIJobTrigger

    api.put("job-1")
    trigger = MusicAIJobTrigger("job-1", musicai_conn_id=CONN, poll_interval=0.02, workflow="wf")

    async def scenario() -> list[dict[str, Any]]:
        first = asyncio.ensure_future(trigger.run().__anext__())
        poller = shared_poller(CONN, 0.02, trigger.max_consecutive_errors)
        await wait_until_async("two poll cycles", lambda: poller.stats.cycles >= 2)
        api.put("job-1", status=status, error={"code": "X"} if status == "FAILED" else None)
        return [(await first).payload]

    payloads = arun(scenario())
    assert [(p["status"], p["last_status"]) for p in payloads] == [(event, status)]
    assert payloads[0]["job"]["status"] == status


def test_the_catalogs_wait_on_the_worker_reports_a_finished_job_listed_as_active(
    api: JobListingAPI, server: HostileServer, tmp_path: Any
) -> None:
    from airflow_provider_musicai.operators.catalog import MusicAICatalogOperator

    api.put("job-1", status="SUCCEEDED", result={})
    api.put("job-2", status="STARTED")
    operator = MusicAICatalogOperator(
        task_id="catalog", sources=[], workflow="wf", manifest=str(tmp_path), musicai_conn_id=CONN
    )
    operator.poll_interval = 0.01
    finished = operator._wait_here({"job-1": "digest-1", "job-2": "digest-2"})
    assert {job_id: outcome["status"] for job_id, outcome in finished.items()} == {"job-1": "SUCCEEDED"}


def test_a_batch_sensor_waits_only_on_jobs_of_its_batch(
    api: JobListingAPI, server: HostileServer, make_context: Any
) -> None:
    from airflow_provider_musicai.sensors.musicai import MusicAIJobSensor

    api.put("nightly-1", status="SUCCEEDED", batchName="nightly", result={})
    api.put("weekly-1", status="QUEUED", batchName="weekly")
    api.put("no-batch", status="QUEUED")
    sensor = MusicAIJobSensor(task_id="wait", batch_name="nightly", musicai_conn_id=CONN, poll_interval=0.1)
    done = sensor.poke(make_context())
    assert not isinstance(done, bool) and done.is_done
    assert [job["id"] for job in done.xcom_value] == ["nightly-1"]


def test_an_idempotency_key_is_found_only_on_a_job_of_the_workflow_asked(
    api: JobListingAPI, server: HostileServer
) -> None:
    from airflow_provider_musicai.hooks.musicai import MusicAIHook
    from airflow_provider_musicai.jobs import IDEMPOTENCY_METADATA_KEY

    api.put("other", workflow="music-ai/isolate-drums", metadata={IDEMPOTENCY_METADATA_KEY: "k"})
    hook = MusicAIHook(musicai_conn_id=CONN)
    assert hook.find_job_by_idempotency_key("k", workflow="wf") is None
    api.put("mine", workflow="wf", metadata={IDEMPOTENCY_METADATA_KEY: "k"})
    found = hook.find_job_by_idempotency_key("k", workflow="wf")
    assert found is not None and found["id"] == "mine"
    hook.close()


def test_a_retry_reattaches_only_to_a_job_of_its_workflow(api: JobListingAPI, server: HostileServer) -> None:
    import logging

    from airflow_provider_musicai.hooks.musicai import MusicAIHook
    from airflow_provider_musicai.jobs import IDEMPOTENCY_METADATA_KEY
    from airflow_provider_musicai.operators._reattach import JobLedger, TaskIdentity

    identity = TaskIdentity("dag", "task", "run", -1, try_number=2)
    key = {IDEMPOTENCY_METADATA_KEY: identity.base_key}
    api.put("other", status="STARTED", workflow="music-ai/isolate-drums", metadata=key)
    hook = MusicAIHook(musicai_conn_id=CONN)
    ledger = JobLedger(hook, identity, "wf", None, logging.getLogger(__name__))
    assert ledger.resolve().job is None  # another workflow's job under the same key is not this task's
    api.put("mine", status="STARTED", workflow="wf", metadata=key)
    assert ledger.resolve().existing_id == "mine"
    hook.close()
