"""DAGs for the "Music AI job" link and the many-jobs sensor; inputs come from the run's conf."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_musicai.operators.musicai import MusicAICreateJobOperator
from airflow_provider_musicai.sensors.musicai import MusicAIJobSensor

STEMS = "music-ai/stems-vocals-accompaniment"
ARGS: dict[str, Any] = {"schedule": None, "start_date": datetime(2025, 1, 1), "catchup": False}

with DAG("musicai_test_links", params={"urls": []}, **ARGS) as links:

    @task
    def inputs(params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        assert params is not None
        return [{"inputUrl": url} for url in params["urls"]]

    common: dict[str, Any] = {"workflow": STEMS, "poll_interval": 0.3}
    worker = MusicAICreateJobOperator(
        task_id="worker", name="worker", workflow_params={"inputUrl": "{{ params.urls[0] }}"}, **common
    )
    deferred = MusicAICreateJobOperator(
        task_id="deferred",
        name="deferred",
        workflow_params={"inputUrl": "{{ params.urls[0] }}"},
        deferrable=True,
        **common,
    )
    mapped = MusicAICreateJobOperator.partial(
        task_id="mapped", name="mapped {{ ti.map_index }}", wait_for_completion=False, **common
    ).expand(workflow_params=inputs())
    MusicAIJobSensor(task_id="sensor", job_id=worker.output, deferrable=True, poll_interval=0.3, timeout=120)
    MusicAIJobSensor(task_id="many", job_id=mapped.output, deferrable=True, poll_interval=0.3, timeout=120)

with DAG("musicai_test_link_no_job", **ARGS) as link_no_job:
    # The create request is refused (unknown workflow): the task fails before any job exists.
    MusicAICreateJobOperator(
        task_id="refused", name="refused", workflow="no-such/workflow", workflow_params={"inputUrl": "x"}
    )


def bad_input_dag(dag_id: str, retry_on_bad_input: bool) -> DAG:
    """One job with two retries allowed; the emulator fails it with BAD_INPUT."""
    with DAG(dag_id, params={"url": ""}, **ARGS) as dag:
        MusicAICreateJobOperator(
            task_id="job",
            name="bad input",
            workflow=STEMS,
            workflow_params={"inputUrl": "{{ params.url }}"},
            poll_interval=0.3,
            retries=2,
            retry_delay=timedelta(0),
            retry_on_bad_input=retry_on_bad_input,
        )
    return dag


bad_input_default = bad_input_dag("musicai_test_bad_input", retry_on_bad_input=False)
bad_input_retried = bad_input_dag("musicai_test_bad_input_retried", retry_on_bad_input=True)

with DAG(
    "musicai_test_many_reschedule", params={"job_ids": []}, render_template_as_native_obj=True, **ARGS
) as many:
    MusicAIJobSensor(
        task_id="wait", job_id="{{ params.job_ids }}", mode="reschedule", poll_interval=0.5, timeout=60
    )
