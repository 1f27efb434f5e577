"""MusicAIJobSensor in poke and deferrable mode (reschedule mode runs through dag.test in test_dags)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_musicai.exceptions import MusicAIJobFailedError
from airflow_provider_musicai.sensors.musicai import MusicAIJobSensor
from airflow_provider_musicai.triggers.musicai import MusicAIJobTrigger

STEMS = "music-ai/stems-vocals-accompaniment"


def sensor(job_id: str, **kwargs: Any) -> MusicAIJobSensor:
    return MusicAIJobSensor(task_id="wait", job_id=job_id, poll_interval=0.2, timeout=30, **kwargs)


@pytest.mark.compat
def test_poke_mode_returns_the_final_document(hook: Any, input_url: Any, make_context: Any) -> None:
    job_id = hook.create_job("s", STEMS, {"inputUrl": input_url()})
    job = sensor(job_id).execute(make_context())
    assert job["id"] == job_id and job["status"] == "SUCCEEDED" and "vocals" in job["result"]


def test_a_job_document_works_as_job_id(hook: Any, input_url: Any, make_context: Any) -> None:
    job_id = hook.create_job("s", STEMS, {"inputUrl": input_url()})
    assert sensor({"id": job_id}).execute(make_context())["id"] == job_id  # type: ignore[arg-type]


def test_failed_job_fails_the_sensor(musicai: Any, hook: Any, input_url: Any, make_context: Any) -> None:
    musicai.admin.fail_jobs(1, code="TIMEOUT")
    job_id = hook.create_job("s", STEMS, {"inputUrl": input_url()})
    with pytest.raises(MusicAIJobFailedError) as caught:
        sensor(job_id).execute(make_context())
    assert caught.value.code == "TIMEOUT"


def test_transient_errors_mean_not_yet(musicai: Any, hook: Any, input_url: Any, make_context: Any) -> None:
    job_id = hook.create_job("s", STEMS, {"inputUrl": input_url()})
    musicai.admin.script_faults({"match": "GET /v1/job/{id}/status", "fault": "502", "count": 3})
    assert sensor(job_id).poke(make_context()) is False
    assert sensor(job_id).execute(make_context())["status"] == "SUCCEEDED"


def test_deferrable_mode_defers_then_resumes(
    musicai: Any, hook: Any, input_url: Any, make_context: Any
) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    musicai.admin.configure(queued_seconds=60)
    job_id = hook.create_job("s", STEMS, {"inputUrl": input_url()})
    with pytest.raises(TaskDeferred) as caught:
        sensor(job_id, deferrable=True).execute(make_context())
    trigger = caught.value.trigger
    assert isinstance(trigger, MusicAIJobTrigger)
    kwargs = trigger.serialize()[1]
    assert kwargs["job_id"] == job_id and kwargs["delete_on_kill"] is False
    event = {"status": "timeout", "job_id": job_id, "job": None, "message": "late", "last_status": "QUEUED"}
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    with pytest.raises(AirflowSensorTimeout):
        sensor(job_id, deferrable=True).execute_complete(make_context(), event)


def test_deferrable_mode_does_not_defer_for_a_finished_job(
    hook: Any, input_url: Any, make_context: Any
) -> None:
    job_id = hook.create_job("s", STEMS, {"inputUrl": input_url()})
    hook.wait_for_job(job_id, poll_interval=0.2)
    assert sensor(job_id, deferrable=True).execute(make_context())["id"] == job_id


def test_a_success_event_in_the_released_format_resumes_to_the_document(make_context: Any) -> None:
    # The payload a task deferred by the current release resumes with (triggers/musicai.py built it).
    job = {"id": "j1", "status": "SUCCEEDED", "result": {"vocals": "musicai-result://j1/vocals"}}
    event = {"status": "success", "job_id": "j1", "job": job, "message": "done", "last_status": "SUCCEEDED"}
    assert sensor("j1", deferrable=True).execute_complete(make_context(), event) == job


def test_parsing_a_dag_with_the_sensor_or_the_operators_imports_no_hook_or_trigger() -> None:
    # DAG-parse cost: the event format and the waiting helpers are read without hooks/ or triggers/.
    from tests.test_import_graph import PACKAGE, import_graphs

    top, _ = import_graphs()
    seen: set[str] = set()
    todo = [f"{PACKAGE}.sensors.musicai", f"{PACKAGE}.operators.musicai"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(top[module])
    assert f"{PACKAGE}.trigger_events" in seen
    assert not [module for module in seen if module.startswith((f"{PACKAGE}.hooks", f"{PACKAGE}.triggers"))]
