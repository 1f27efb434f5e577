"""Wait for a Music AI job created elsewhere (an app, another DAG, the dashboard), then use its result.

Trigger it with the job's id, e.g. ``airflow dags trigger example_musicai_sensor -c
'{"job_id": "2e35babc-91c4-4121-89f4-5a2acf956b28"}'``. The sensor waits deferred (no worker slot),
returns the final job document, and fails with the API's code, title and message if the job FAILED.
The sensor never deletes the job: it did not create it.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import Param, dag, task

from airflow_provider_musicai.sensors.musicai import MusicAIJobSensor

POLL_INTERVAL = float(os.environ.get("MUSICAI_EXAMPLE_POLL_INTERVAL", "30"))


@dag(
    dag_id="example_musicai_sensor",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "musicai"],
    params={"job_id": Param(type="string", minLength=1, description="The Music AI job to wait for")},
    doc_md=__doc__,
)
def example_musicai_sensor() -> None:
    # [START howto_sensor_musicai_job]
    wait_for_job = MusicAIJobSensor(
        task_id="wait_for_job",
        job_id="{{ params.job_id }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(hours=6),
    )
    # [END howto_sensor_musicai_job]

    @task
    def use_result(job: dict[str, Any]) -> list[str]:
        """Whatever comes next; here: list the result's keys (never print the signed URLs)."""
        keys = sorted(job.get("result") or {})
        print(f"Job {job['id']} ({job['workflow']}) SUCCEEDED with results: {', '.join(keys)}")
        return keys

    use_result(wait_for_job.output)


dag = example_musicai_sensor()
