"""DAGs run by ``tests/airflow/test_dags.py``; their inputs (URLs, job ids) come from the run's conf."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_musicai.operators.musicai import MusicAICreateJobOperator, MusicAIDeleteJobOperator
from airflow_provider_musicai.sensors.musicai import MusicAIJobSensor

STEMS = "music-ai/stems-vocals-accompaniment"
ARGS: dict[str, Any] = {"schedule": None, "start_date": datetime(2025, 1, 1), "catchup": False}

with DAG("musicai_test_mapping", params={"urls": []}, **ARGS) as mapping:

    @task
    def inputs(params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        assert params is not None
        return [{"inputUrl": url} for url in params["urls"]]

    jobs = MusicAICreateJobOperator.partial(
        task_id="jobs", name="mapped {{ ti.map_index }}", workflow=STEMS, deferrable=True, poll_interval=0.3
    ).expand(workflow_params=inputs())
    MusicAIDeleteJobOperator(task_id="cleanup", job_id=jobs.output)


def reattach_dag(dag_id: str, deferrable: bool) -> DAG:
    """Try 1 times out waiting (the job goes on); the retry must reattach to that job."""
    with DAG(dag_id, params={"url": ""}, **ARGS) as dag:
        MusicAICreateJobOperator(
            task_id="job",
            name="slow",
            workflow=STEMS,
            workflow_params={"inputUrl": "{{ params.url }}"},
            deferrable=deferrable,
            poll_interval=0.3,
            timeout=1.0,
            retries=2,
            retry_delay=timedelta(0),
        )
    return dag


reattach_worker = reattach_dag("musicai_test_reattach_worker", deferrable=False)
reattach_deferred = reattach_dag("musicai_test_reattach_deferred", deferrable=True)

with DAG("musicai_test_reschedule", params={"job_id": ""}, **ARGS) as reschedule:
    MusicAIJobSensor(
        task_id="wait", job_id="{{ params.job_id }}", mode="reschedule", poll_interval=0.5, timeout=60
    )


def timeout_dag(
    dag_id: str, *, deferrable: bool, retries: int, on_timeout: str = "auto", **waiting: Any
) -> DAG:
    """Every try times out waiting for a job that never finishes in time (``timeout`` 0.5 s unless
    ``waiting`` says otherwise); ``on_timeout`` decides what becomes of the job."""
    with DAG(dag_id, params={"url": ""}, **ARGS) as dag:
        MusicAICreateJobOperator(
            task_id="job",
            name="never in time",
            workflow=STEMS,
            workflow_params={"inputUrl": "{{ params.url }}"},
            deferrable=deferrable,
            poll_interval=0.2,
            on_timeout=on_timeout,
            retries=retries,
            retry_delay=timedelta(0),
            **({"timeout": 0.5} | waiting),
        )
    return dag


timeout_auto_worker = timeout_dag("musicai_test_timeout_auto_worker", deferrable=False, retries=1)
timeout_auto_deferred = timeout_dag("musicai_test_timeout_auto_deferred", deferrable=True, retries=1)
timeout_keep = timeout_dag("musicai_test_timeout_keep", deferrable=True, retries=0, on_timeout="keep")
timeout_delete = timeout_dag("musicai_test_timeout_delete", deferrable=False, retries=1, on_timeout="delete")
#: ``execution_timeout`` (2 s) cuts a job read the emulator holds: AirflowTaskTimeout inside execute.
execution_timeout = timeout_dag(
    "musicai_test_execution_timeout",
    deferrable=False,
    retries=0,
    timeout=None,
    execution_timeout=timedelta(seconds=2),
)


def sensor_timeout_dag(dag_id: str, *, deferrable: bool, **on_timeout: str) -> DAG:
    """A sensor whose ``timeout`` (1 s) runs out before the job of ``params.job_id`` finishes."""
    with DAG(dag_id, params={"job_id": ""}, **ARGS) as dag:
        MusicAIJobSensor(
            task_id="wait",
            job_id="{{ params.job_id }}",
            deferrable=deferrable,
            poll_interval=0.2,
            timeout=1,
            retries=2,
            retry_delay=timedelta(0),
            **on_timeout,
        )
    return dag


sensor_timeout_default = sensor_timeout_dag("musicai_test_sensor_timeout_default", deferrable=True)
sensor_timeout_auto_poke = sensor_timeout_dag(
    "musicai_test_sensor_timeout_auto_poke", deferrable=False, on_timeout="auto"
)
sensor_timeout_auto_deferred = sensor_timeout_dag(
    "musicai_test_sensor_timeout_auto_deferred", deferrable=True, on_timeout="auto"
)
