"""DAGs the crash suite (``tests/reliability/test_crash.py``) runs through Airflow's real processes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_musicai.operators.musicai import MusicAICreateJobOperator

STEMS = "music-ai/stems-vocals-accompaniment"
ARGS: dict[str, Any] = {
    "schedule": None,
    "start_date": datetime(2025, 1, 1),
    "catchup": False,
    "is_paused_upon_creation": False,
}

# One job waited on in a worker slot; the worker is killed while it waits and Airflow retries.
with DAG("musicai_reliability_worker_kill", params={"url": ""}, **ARGS) as worker_kill:
    MusicAICreateJobOperator(
        task_id="job",
        name="worker kill {{ run_id }}",
        workflow=STEMS,
        workflow_params={"inputUrl": "{{ params.url }}"},
        deferrable=False,
        poll_interval=0.5,
        retries=2,
        retry_delay=timedelta(seconds=0),
    )

# Many jobs waited on in the triggerer; the triggerer is restarted while they are all deferred.
with DAG("musicai_reliability_deferred_many", params={"url": "", "count": 1}, **ARGS) as deferred_many:

    @task
    def inputs(params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        assert params is not None
        return [{"inputUrl": params["url"]} for _ in range(int(params["count"]))]

    MusicAICreateJobOperator.partial(
        task_id="job",
        name="deferred {{ ti.map_index }}",
        workflow=STEMS,
        deferrable=True,
        poll_interval=1.0,
        retries=1,
        retry_delay=timedelta(seconds=0),
    ).expand(workflow_params=inputs())
