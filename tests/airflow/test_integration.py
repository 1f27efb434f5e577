"""One run through Airflow's real processes: a deferred task is resumed by the triggerer process,
and marking a deferred task failed deletes its job (from the triggerer; on Airflow 3.0-3.2, where a
trigger cannot tell a kill from a triggerer restart, it keeps the job and says so).

Airflow 3: ``api-server`` (execution API only), ``scheduler`` (LocalExecutor), ``dag-processor``
and ``triggerer``. Airflow 2.11: ``scheduler`` (which parses DAGs itself) and ``triggerer``, with
the SequentialExecutor, the only one Airflow 2 accepts on SQLite. All on a fresh SQLite database in
a temporary AIRFLOW_HOME. The test reads Airflow's state straight from that SQLite file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_musicai.triggers.musicai import KILL_UNDETECTABLE
from tests.helpers.airflow import DAG_ID, Deployment, airflow_version

pytestmark = pytest.mark.integration


@pytest.fixture
def deployment(deploy: Callable[..., Deployment]) -> Deployment:
    return deploy(dags=(DAG_ID,))


@pytest.mark.compat
def test_the_triggerer_resumes_the_deferred_task_and_a_kill_deletes_the_job(
    deployment: Deployment, musicai: Any, hook: Any, input_url: Any
) -> None:
    sealed = input_url()

    # 1. The task defers; the triggerer process polls the job and resumes the task on a worker.
    # The job takes ~10 s: a trigger that fires before the scheduler has processed the deferring
    # worker's exit trips an Airflow 3 race ("finished with state success, but the task
    # instance's state attribute is queued"), unrelated to this provider.
    musicai.admin.configure(queued_seconds=8, processing_seconds=2)
    deployment.trigger("it-1", {"url": sealed})
    deployment.wait_for("the task to defer", lambda: deployment.ti_state("it-1") == "deferred")
    assert deployment.query("SELECT classpath FROM trigger") == [
        ("airflow_provider_musicai.triggers.musicai.MusicAIJobTrigger",)
    ]
    deployment.wait_for("the run to end", lambda: deployment.run_state("it-1") in ("success", "failed"))
    assert deployment.run_state("it-1") == "success", deployment.logs()[-8000:]
    (job,) = musicai.admin.jobs()
    assert job["status"] == "SUCCEEDED"
    logs = deployment.logs()
    assert f"Waiting for Music AI job {job['id']}" in logs
    assert f"Music AI job {job['id']} SUCCEEDED; result keys: accompaniments, vocals" in logs
    triggerer_jobs = deployment.query("SELECT COUNT(*) FROM job WHERE job_type = 'TriggererJob'")
    assert triggerer_jobs and triggerer_jobs[0][0] >= 1

    # 2. Marking the deferred task failed (as the UI does: the row leaves DEFERRED) deletes the job.
    musicai.admin.configure(queued_seconds=600)
    deployment.trigger("it-2", {"url": sealed})
    deployment.wait_for("the second task to defer", lambda: deployment.ti_state("it-2") == "deferred")
    (slow,) = [other for other in musicai.admin.jobs() if other["id"] != job["id"]]
    # (A kill before the triggerer picked the trigger up would not reach the trigger at all.)
    deployment.wait_for(
        "the triggerer to run the trigger",
        lambda: f"Waiting for Music AI job {slow['id']}" in deployment.logs(),
    )
    with sqlite3.connect(deployment.db, timeout=30) as db:
        db.execute(
            "UPDATE task_instance SET state = 'failed', end_date = CURRENT_TIMESTAMP "
            "WHERE dag_id = ? AND run_id = 'it-2'",
            (DAG_ID,),
        )
    if KILL_UNDETECTABLE:  # Airflow 3.0-3.2: the trigger cannot tell; it keeps the job and says so
        kept = f"Music AI job {slow['id']} kept: on Airflow {airflow_version()} a cancelled trigger"
        deployment.wait_for("the kept job to be logged", lambda: kept in deployment.logs(), timeout=60)
        assert slow["id"] in {other["id"] for other in musicai.admin.jobs()}
        hook.delete_job(slow["id"])
    else:
        deployment.wait_for(
            "the killed task's job to be deleted",
            lambda: slow["id"] not in {other["id"] for other in musicai.admin.jobs()},
            timeout=60,
        )
        assert f"Deleted Music AI job {slow['id']}" in deployment.wait_for(
            "the deletion to be logged",
            lambda: f"Deleted Music AI job {slow['id']}" in deployment.logs() and deployment.logs(),
        )
    assert musicai.admin.counters()["jobs_created"] == 2
