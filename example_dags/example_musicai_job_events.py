"""DAG runs for the Music AI jobs that finish, wherever they were started (Airflow 3).

An asset watched by :class:`~airflow_provider_musicai.triggers.events.MusicAIJobEventTrigger`: the
triggerer lists the finished jobs, and every job of the workflow that SUCCEEDED since the watcher
started becomes one asset event, whose extra (job id, workflow, result references) the DAG reads.
Start jobs from the Music AI dashboard, an application or another DAG. Each job reaches exactly one
run, but a run may carry several jobs (Airflow 3.1-3.3 fold events that queue up together, and may
leave one for the next run: see the docs' "How jobs become DAG runs"), so the task handles every
event of its run.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import Asset, AssetWatcher, dag, task

from airflow_provider_musicai.triggers.events import MusicAIJobEventTrigger

# Airflow 3 only: asset watchers (and so this example) do not exist on Airflow 2.
POLL_INTERVAL = float(os.environ.get("MUSICAI_EXAMPLE_POLL_INTERVAL", "30"))

# [START howto_trigger_musicai_job_events]
finished_stems = Asset(
    "musicai-finished-stems",
    watchers=[
        AssetWatcher(
            name="musicai_finished_stems",
            trigger=MusicAIJobEventTrigger(
                workflow="music-ai/stems-vocals-accompaniment",
                statuses=("SUCCEEDED",),
                poll_interval=POLL_INTERVAL,
            ),
        )
    ],
)


@dag(dag_id="example_musicai_job_events", schedule=[finished_stems], tags=["example", "musicai"])
def example_musicai_job_events() -> None:
    @task
    def handle_job(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        """Every job this run carries (one or more): id, workflow and result references are in each
        event's extra. Events that reached the asset some other way (the UI, the REST API, a task's
        outlets) carry no job ``payload`` and are skipped."""
        events = triggering_asset_events[finished_stems]
        jobs = [event.extra["payload"] for event in events if "payload" in (event.extra or {})]
        for job in jobs:
            print(
                f"Music AI job {job['job_id']} ({job['workflow']}) {job['status']}: {sorted(job['result'])}"
            )
        return jobs

    handle_job()


# [END howto_trigger_musicai_job_events]

dag = example_musicai_job_events()
