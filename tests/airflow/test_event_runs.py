"""Jobs that finish together, through Airflow 3's real triggerer and scheduler: the watcher fires one
asset event per job, each job reaches exactly one DAG run, and a run may carry several jobs.

Airflow before 3.4 (apache/airflow#54659) gives a DAG run only the asset events stamped up to the
moment its queue entry was made, then drops the entry: events that arrive while it exists (the
second of two jobs one poll found) wait, unqueued, for the next event on the asset, and run with it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.airflow import Deployment, airflow_major, airflow_minor
from tests.helpers.reliability import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(airflow_major() < 3, reason="asset watchers need Airflow 3"),
]

DAG_ID = "musicai_events_it"
STEMS = "music-ai/stems-vocals-accompaniment"
METADATA = {"origin": "events-it"}


def fired(deployment: Deployment) -> list[str]:
    """The job ids of the asset events, oldest event first."""
    rows = deployment.query("SELECT extra FROM asset_event ORDER BY id")
    return [json.loads(extra)["payload"]["job_id"] for (extra,) in rows if extra and "payload" in extra]


def consumed(deployment: Deployment) -> dict[str, list[str]]:
    """Each asset-triggered run's consumed events (job ids), by run, oldest run first."""
    rows = deployment.query(
        "SELECT dr.run_id, ae.extra FROM dag_run dr JOIN dagrun_asset_event dae ON dae.dag_run_id = dr.id "
        "JOIN asset_event ae ON ae.id = dae.event_id WHERE dr.dag_id = ? ORDER BY dr.id, ae.id",
        DAG_ID,
    )
    runs: dict[str, list[str]] = {}
    for run_id, extra in rows:
        runs.setdefault(run_id, []).append(json.loads(extra)["payload"]["job_id"])
    return runs


def handled(deployment: Deployment) -> list[str]:
    """The job ids the DAG's task handled (its return values), every run."""
    rows = deployment.query(
        "SELECT value FROM xcom WHERE dag_id = ? AND task_id = 'handle' AND key = 'return_value'", DAG_ID
    )
    return [job_id for (value,) in rows for job_id in json.loads(value)]


def queued(deployment: Deployment) -> int:
    """Rows in Airflow's asset DAG run queue: what the scheduler will still make a run of."""
    return int(deployment.query("SELECT COUNT(*) FROM asset_dag_run_queue")[0][0])


def test_jobs_found_in_one_poll_each_reach_exactly_one_run(
    deploy: Callable[..., Deployment], hook: Any, input_url: Any, musicai: Any
) -> None:
    since = datetime.now(UTC).isoformat()
    together = [hook.create_job(f"together {n}", STEMS, {"inputUrl": input_url()}, METADATA) for n in (1, 2)]
    for job_id in together:
        musicai.admin.complete_job(job_id)
    wait_until("both jobs to finish", lambda: all(hook.get_job_status(j) == "SUCCEEDED" for j in together))
    # Both finished before the watcher's first poll: that poll finds them together.
    deployment = deploy(
        dags=(DAG_ID,),
        dag_files=(Path(__file__).parent / "integration_dags" / "musicai_events_dag.py",),
        env={"MUSICAI_EVENTS_SINCE": since},
    )
    deployment.wait_for("an event per job", lambda: sorted(fired(deployment)) == sorted(together), timeout=300)
    deployment.wait_for("a run, and nothing left queued", lambda: consumed(deployment) and not queued(deployment))
    first = consumed(deployment)
    print("after the first poll:", first, "fired:", fired(deployment))

    later = hook.create_job("later", STEMS, {"inputUrl": input_url()}, METADATA)
    musicai.admin.complete_job(later)
    every = [*together, later]
    deployment.wait_for(
        "every job in a run",
        lambda: sorted(j for jobs in consumed(deployment).values() for j in jobs) == sorted(every),
        timeout=300,
    )
    print("after the later job:", consumed(deployment))
    deployment.wait_for("every run's task", lambda: len(handled(deployment)) >= len(every), timeout=300)
    assert sorted(handled(deployment)) == sorted(every)
    assert sorted(fired(deployment)) == sorted(every)
