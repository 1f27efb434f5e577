"""MusicAICatalogTrigger's hold: it never fires within ``hold`` seconds of its start, even when
every job of its window is already final (Airflow 3's fire-right-after-deferral race,
apache/airflow#67287 and #72716: a try whose trigger fires before the scheduler processed the
deferring worker's exit is failed as "killed externally")."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from airflow_provider_musicai.common import DEFAULT_DEFERRAL_HOLD
from airflow_provider_musicai.operators._catalog_run import CatalogRun
from airflow_provider_musicai.operators.catalog import MusicAICatalogOperator
from airflow_provider_musicai.triggers._poller import shared_poller
from airflow_provider_musicai.triggers.catalog import MusicAICatalogTrigger

STEMS = "music-ai/stems-vocals-accompaniment"
QUICK = {"queued_seconds": 0.0, "processing_seconds": 0.0}


def final_jobs(hook: Any, input_url: Any, count: int) -> list[str]:
    """``count`` jobs, returned once every one of them is final on the emulator."""
    ids = [str(hook.create_job(f"hold {n}", STEMS, {"inputUrl": input_url()})) for n in range(count)]
    for job_id in ids:
        hook.wait_for_job(job_id, poll_interval=0.05)
    assert {hook.get_job(job_id)["status"] for job_id in ids} == {"SUCCEEDED"}
    return ids


async def until(check: Any, what: str, timeout: float = 60.0) -> None:
    """Wait (on the running loop) until ``check()`` is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.mark.musicai_config(**QUICK)
def test_the_event_is_held_although_every_job_is_already_final(
    musicai: Any, hook: Any, input_url: Any
) -> None:
    ids = final_jobs(hook, input_url, 3)
    trigger = MusicAICatalogTrigger(job_ids=ids, workflow=STEMS, min_finished=3, poll_interval=0.1, hold=600)

    async def run() -> tuple[bool, bool, int]:
        task = asyncio.ensure_future(trigger.run().__anext__())
        # Without the hold the event comes as soon as the poller confirmed the three jobs.
        await until(lambda: task.done() or trigger.holding, "the event or the hold")
        held = trigger.holding and not task.done()
        confirmed = shared_poller("musicai_default", 0.1, 5).stats.finished
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return held, task.cancelled(), confirmed

    held, cancelled, confirmed = asyncio.run(run())
    assert held and cancelled
    assert confirmed == 3  # the jobs were known final: only the hold kept the event back


@pytest.mark.musicai_config(**QUICK)
def test_after_the_hold_the_event_reports_every_final_job(musicai: Any, hook: Any, input_url: Any) -> None:
    ids = final_jobs(hook, input_url, 2)
    trigger = MusicAICatalogTrigger(job_ids=ids, workflow=STEMS, min_finished=2, poll_interval=0.1, hold=0.5)

    async def run() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    (event,) = asyncio.run(run())
    assert event["status"] == "finished"
    assert sorted(event["finished"]) == sorted(ids)
    assert {outcome["status"] for outcome in event["finished"].values()} == {"SUCCEEDED"}


def test_the_hold_is_a_serialized_kwarg_set_from_the_operator(musicai: Any) -> None:
    from airflow.serialization.serialized_objects import BaseSerialization

    trigger = MusicAICatalogTrigger(job_ids=["a"], workflow=STEMS)
    assert trigger.hold == DEFAULT_DEFERRAL_HOLD == 5.0
    classpath, kwargs = MusicAICatalogTrigger(job_ids=["a"], workflow=STEMS, hold=2.5).serialize()
    assert kwargs["hold"] == 2.5
    restored = BaseSerialization.deserialize(BaseSerialization.serialize(kwargs))
    assert MusicAICatalogTrigger(**restored).serialize() == (classpath, kwargs)
    assert json.loads(json.dumps(kwargs)) == kwargs

    from airflow.providers.common.compat.sdk import TaskDeferred

    for given, expected in (({}, DEFAULT_DEFERRAL_HOLD), ({"deferral_hold": 0.0}, 0.0)):
        operator = MusicAICatalogOperator(task_id="c", workflow=STEMS, sources=[], manifest="m", **given)
        run = {"cursor": 1, "window": {"job-1": "t.wav"}, "ahead": [], "succeeded": 0, "failed": 0}
        with pytest.raises(TaskDeferred) as deferred:
            operator._defer(CatalogRun.from_carry(run))
        assert deferred.value.trigger.serialize()[1]["hold"] == expected
    with pytest.raises(ValueError, match="deferral_hold"):
        MusicAICatalogOperator(task_id="c", workflow=STEMS, sources=[], manifest="m", deferral_hold=-1)


def test_on_kill_deletes_the_running_jobs_and_passes_over_one_already_gone(
    musicai: Any, hook: Any, input_url: Any, caplog: pytest.LogCaptureFixture
) -> None:
    musicai.admin.configure(queued_seconds=60)
    ids = [str(hook.create_job(f"kill {n}", STEMS, {"inputUrl": input_url()})) for n in range(3)]
    hook.delete_job(ids[0])  # gone before the kill: no warning, no second delete counted
    trigger = MusicAICatalogTrigger(job_ids=ids, workflow=STEMS, delete_on_kill=False)
    asyncio.run(trigger.on_kill())
    assert sorted(job["id"] for job in musicai.admin.jobs()) == sorted(ids[1:])
    trigger = MusicAICatalogTrigger(job_ids=ids, workflow=STEMS, delete_on_kill=True)
    trigger._log = logging.getLogger("tests.catalog.kill")  # a logger that reaches caplog
    with caplog.at_level("INFO", logger="tests.catalog.kill"):
        asyncio.run(trigger.on_kill())
    assert musicai.admin.jobs() == []
    assert "Could not delete" not in caplog.text
