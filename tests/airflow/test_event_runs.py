"""Jobs that finish together, through Airflow 3's real triggerer and scheduler: the watcher fires one
asset event per job, each job reaches exactly one DAG run, and a run may carry several jobs.

Airflow before 3.4 (apache/airflow#54659) gives a DAG run only the asset events stamped up to the
moment its queue entry was made, then drops the entry: events that arrive while it exists (the
second of two jobs one poll found) wait, unqueued, for the next event on the asset, and run with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.airflow import AIRFLOW, Deployment, airflow_major, airflow_minor
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


def consumed(deployment: Deployment, dag_id: str = DAG_ID) -> dict[str, list[str]]:
    """Each asset-triggered run's consumed events (job ids), by run, oldest run first."""
    rows = deployment.query(
        "SELECT dr.run_id, ae.extra FROM dag_run dr JOIN dagrun_asset_event dae ON dae.dag_run_id = dr.id "
        "JOIN asset_event ae ON ae.id = dae.event_id WHERE dr.dag_id = ? ORDER BY dr.id, ae.id",
        dag_id,
    )
    runs: dict[str, list[str]] = {}
    for run_id, extra in rows:
        runs.setdefault(run_id, []).append(json.loads(extra)["payload"]["job_id"])
    return runs


def handled(deployment: Deployment, dag_id: str = DAG_ID, task_id: str = "handle") -> list[str]:
    """The job ids the DAG's task handled (its return values: job ids or job payloads), every run."""
    rows = [
        *deployment.query(  # Airflow 3.1-3.3
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value'",
            dag_id,
            task_id,
        ),
        *deployment.query(  # Airflow 3.4: XCom rows point at their task instance
            "SELECT x.value FROM xcom_v2 x JOIN task_instance ti ON ti.id = x.task_instance_id "
            "WHERE ti.dag_id = ? AND ti.task_id = ? AND x.key = 'return_value'",
            dag_id,
            task_id,
        ),
    ]
    values = [item for (value,) in rows for item in json.loads(value)]
    return [item["job_id"] if isinstance(item, dict) else item for item in values]


def queued(deployment: Deployment) -> int:
    """Rows in Airflow's asset DAG run queue: what the scheduler will still make a run of."""
    return int(deployment.query("SELECT COUNT(*) FROM asset_dag_run_queue")[0][0])


def test_jobs_found_in_one_poll_each_reach_exactly_one_run(
    deploy: Callable[..., Deployment], hook: Any, input_url: Any, musicai: Any
) -> None:
    """The watcher's part, on every Airflow 3: both jobs one poll finds fire, once each, and each
    reaches exactly one run, however Airflow groups them (and once a later job has run)."""
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
    deployment.wait_for(
        "an event per job", lambda: sorted(fired(deployment)) == sorted(together), timeout=300
    )
    deployment.wait_for(
        "a run, and nothing left queued", lambda: consumed(deployment) and not queued(deployment)
    )

    later = hook.create_job("later", STEMS, {"inputUrl": input_url()}, METADATA)
    musicai.admin.complete_job(later)
    every = [*together, later]
    deployment.wait_for(
        "every job in a run",
        lambda: sorted(j for jobs in consumed(deployment).values() for j in jobs) == sorted(every),
        timeout=300,
    )
    deployment.wait_for("every run's task", lambda: len(handled(deployment)) >= len(every), timeout=300)
    assert sorted(handled(deployment)) == sorted(every)
    assert sorted(fired(deployment)) == sorted(every)


EXAMPLE = Path(__file__).parents[2] / "example_dags" / "example_musicai_job_events.py"
EXAMPLE_ID = "example_musicai_job_events"
FLUSH = Path(__file__).parent / "integration_dags" / "musicai_events_flush_dag.py"
#: Airflow folds the events queued together into one run, and may leave one behind
#: (apache/airflow#54659); Airflow 3.4 makes one run per event.
BATCHING = airflow_minor() < (3, 4)


def stop(deployment: Deployment, name: str) -> None:
    """Stop process ``name`` of ``deployment`` (its whole process group) and wait for it."""
    process = deployment.processes[name]
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def jobs_in_runs(deployment: Deployment) -> list[str]:
    return sorted(job_id for jobs in consumed(deployment, EXAMPLE_ID).values() for job_id in jobs)


def runs_of_example(deployment: Deployment) -> list[list[str]]:
    """Each run's consumed events, oldest run first: a job id, or ``-`` for an event with no job."""
    rows = deployment.query(
        "SELECT dr.id, ae.extra FROM dag_run dr JOIN dagrun_asset_event dae ON dae.dag_run_id = dr.id "
        "JOIN asset_event ae ON ae.id = dae.event_id WHERE dr.dag_id = ? ORDER BY dr.id, ae.id",
        EXAMPLE_ID,
    )
    runs: dict[int, list[str]] = {}
    for run, extra in rows:
        payload = json.loads(extra or "{}").get("payload")
        runs.setdefault(run, []).append(payload["job_id"] if payload else "-")
    return list(runs.values())


def finished_together(
    deployment: Deployment, hook: Any, input_url: Any, musicai: Any, count: int
) -> list[str]:
    """``count`` jobs whose events all reach Airflow before its scheduler makes a run of the first
    (as when one poll finds them: their events follow each other by milliseconds, but certainly);
    their ids, oldest event first. Airflow 3.4 makes a run per event: its scheduler keeps running."""
    before = fired(deployment)
    if BATCHING:
        stop(deployment, "scheduler")
    jobs = [hook.create_job(f"together {n}", STEMS, {"inputUrl": input_url()}) for n in range(count)]
    for job_id in jobs:
        musicai.admin.complete_job(job_id)
    wait_until(
        "an event per job", lambda: sorted(fired(deployment)[len(before) :]) == sorted(jobs), timeout=300
    )
    if BATCHING:
        deployment.start_one("scheduler")
    return fired(deployment)[len(before) :]


@pytest.mark.skipif(airflow_minor() < (3, 3), reason="the watermark row (3.3+) says the watcher has started")
def test_the_example_handles_every_job_a_run_carries(
    deploy: Callable[..., Deployment], hook: Any, input_url: Any, musicai: Any
) -> None:
    deployment = deploy(
        dags=(EXAMPLE_ID, "musicai_events_flush"),
        dag_files=(EXAMPLE, FLUSH),
        env={"MUSICAI_EXAMPLE_POLL_INTERVAL": "1"},
    )
    deployment.wait_for(
        "the watcher's watermark", lambda: deployment.query("SELECT 1 FROM asset_state_store"), timeout=300
    )

    a, b = finished_together(deployment, hook, input_url, musicai, 2)
    if BATCHING:
        # The run takes the events up to its queue entry's time (the first event's) and drops the
        # entry: the second event waits, unqueued, for the next event on the asset.
        deployment.wait_for(
            "a run, and nothing left queued", lambda: runs_of_example(deployment) and not queued(deployment)
        )
        assert runs_of_example(deployment) == [[a]]
    c = hook.create_job("later", STEMS, {"inputUrl": input_url()})
    musicai.admin.complete_job(c)
    deployment.wait_for(
        "a, b and c in runs", lambda: jobs_in_runs(deployment) == sorted([a, b, c]), timeout=300
    )
    assert runs_of_example(deployment) == ([[a], [b, c]] if BATCHING else [[a], [b], [c]])

    # The workaround: an event of our own runs what was left behind, and carries no job.
    earlier = len(runs_of_example(deployment))
    d, e = finished_together(deployment, hook, input_url, musicai, 2)
    deployment.wait_for(
        "a run, and nothing left queued", lambda: d in jobs_in_runs(deployment) and not queued(deployment)
    )
    subprocess.run(
        [AIRFLOW, "dags", "trigger", "musicai_events_flush"],
        env=deployment.env,
        check=True,
        capture_output=True,
    )
    deployment.wait_for("the flush's run", lambda: runs_of_example(deployment)[-1][-1:] == ["-"], timeout=300)
    runs = runs_of_example(deployment)
    assert runs[earlier:] == ([[d], [e, "-"]] if BATCHING else [[d], [e], ["-"]]), runs

    deployment.wait_for(
        "every run to end",
        lambda: (
            not deployment.query(
                "SELECT 1 FROM dag_run WHERE dag_id = ? AND state NOT IN ('success', 'failed')", EXAMPLE_ID
            )
        ),
        timeout=300,
    )
    states = deployment.query("SELECT state FROM dag_run WHERE dag_id = ?", EXAMPLE_ID)
    assert {state for (state,) in states} == {"success"}, deployment.logs()[-6000:]
    assert sorted(handled(deployment, EXAMPLE_ID, "handle_job")) == sorted([a, b, c, d, e]), runs
