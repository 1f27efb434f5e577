"""Jobs whose ``workflow`` is the older reference's ``{"id", "name"}`` object instead of the slug
(the emulator's ``workflow_shape="object"``, evidence D12): pipelines, sensors on jobs made elsewhere
(the shared poller then cannot list by workflow and reads each job) and the hook behave as on slugs.
The event watchers' workflow filter is tested in test_event_trigger."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_musicai.jobs import workflow_slug
from tests.helpers.airflow import load_example, run_dag, task_states, xcom_value

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.musicai_config(workflow_shape="object")]

STEMS = "music-ai/stems-vocals-accompaniment"


def test_the_hook_reads_the_object_form_sync_and_async(hook: Any, input_url: Any) -> None:
    stems = next(w for w in hook.list_workflows() if w["slug"] == STEMS)
    job_id = hook.create_job("object form", STEMS, {"inputUrl": input_url()})
    job = hook.wait_for_job(job_id, poll_interval=0.1, timeout=60)
    assert job["workflow"] == {"id": stems["id"], "name": stems["name"]} and workflow_slug(job) is None
    assert [j["id"] for j in hook.list_jobs(workflow=STEMS)] == [job_id]

    async def read() -> tuple[Any, list[Any]]:
        return await hook.aget_job(job_id), [w async for w in hook.alist_workflows()]

    async_job, workflows = asyncio.run(read())
    assert async_job["workflow"] == job["workflow"]
    assert workflows == list(hook.list_workflows())


def test_the_example_chain_runs_whole(musicai: Any, tmp_path: Path) -> None:
    dag_run = run_dag(load_example("example_musicai_chain"), {"output_dir": str(tmp_path)})
    states = task_states(dag_run)
    assert set(states.values()) == {"success"}, states
    stems = xcom_value(dag_run, "separate_stems")
    assert stems["status"] == "SUCCEEDED" and set(stems["workflow"]) == {"id", "name"}
    assert Path(xcom_value(dag_run, "download_lyrics")["lyrics"]).stat().st_size > 0
    assert musicai.admin.jobs() == []


def test_a_deferred_sensor_on_a_job_made_elsewhere(musicai: Any, hook: Any, input_url: Any) -> None:
    job_id = hook.create_job("made elsewhere", STEMS, {"inputUrl": input_url()})
    dag_run = run_dag(load_example("example_musicai_sensor"), {"job_id": job_id})
    assert set(task_states(dag_run).values()) == {"success"}
    assert xcom_value(dag_run, "wait_for_job")["id"] == job_id
    assert xcom_value(dag_run, "use_result") == ["accompaniments", "vocals"]
