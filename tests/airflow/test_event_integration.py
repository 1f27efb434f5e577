"""Jobs created straight on the emulator start DAG runs through Airflow 3's real triggerer and
scheduler, one per job, and a triggerer restart fires no job twice (on Airflow 3.3+, which keeps the
watcher's watermark; before it the restarted watcher starts again from ``since``)."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.airflow import Deployment, airflow_major, airflow_minor

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(airflow_major() < 3, reason="asset watchers need Airflow 3"),
]

DAG_ID = "musicai_events_it"
STEMS = "music-ai/stems-vocals-accompaniment"


@pytest.fixture
def deployment(deploy: Callable[..., Deployment]) -> Deployment:
    return deploy(
        dags=(DAG_ID,),
        dag_files=(Path(__file__).parent / "integration_dags" / "musicai_events_dag.py",),
        env={"MUSICAI_EVENTS_SINCE": datetime.now(UTC).isoformat()},
    )


def fired_job_ids(deployment: Deployment) -> list[str]:
    rows = deployment.query("SELECT extra FROM asset_event")
    payloads = [json.loads(extra).get("payload") or {} for (extra,) in rows if extra]
    return [payload["job_id"] for payload in payloads if "job_id" in payload]


def runs(deployment: Deployment) -> int:
    return int(deployment.query("SELECT COUNT(*) FROM dag_run WHERE dag_id = ?", DAG_ID)[0][0])


@pytest.mark.compat
def test_each_finished_job_starts_one_run_across_a_triggerer_restart(
    deployment: Deployment, hook: Any, input_url: Any
) -> None:
    metadata = {"origin": "events-it"}
    # One job at a time: on Airflow 3.1-3.3 events that queue up together make one run, and one
    # may wait for the next event (apache/airflow#54659; test_event_runs.py shows both).
    first: list[str] = []
    for n in range(2):
        first.append(hook.create_job(f"it {n}", STEMS, {"inputUrl": input_url()}, metadata))
        deployment.wait_for(f"job {n}'s event", lambda: first[-1] in fired_job_ids(deployment), timeout=300)
        deployment.wait_for(f"run {n + 1}", lambda: runs(deployment) == len(first), timeout=300)
    assert sorted(fired_job_ids(deployment)) == sorted(first)

    deployment.restart("triggerer", signal.SIGTERM)
    later = hook.create_job("it later", STEMS, {"inputUrl": input_url()}, metadata)
    # Events fire oldest job first: once the later job's event exists, a repeat of the first two
    # (older) jobs would already be there too.
    deployment.wait_for("the later job's event", lambda: later in fired_job_ids(deployment), timeout=300)
    if airflow_minor() >= (3, 3):  # the watermark lives in the asset state store
        assert sorted(fired_job_ids(deployment)) == sorted([*first, later]), deployment.logs()[-6000:]
        deployment.wait_for("a run for the later job", lambda: runs(deployment) >= 3)
        assert runs(deployment) == 3
    else:
        # No asset state store: the restarted watcher starts again from `since`, as its log said.
        assert sorted(fired_job_ids(deployment)) == sorted([*first, *first, later]), deployment.logs()[-6000:]
        assert "watermark is kept in memory only (this Airflow has no asset state store" in deployment.logs()
