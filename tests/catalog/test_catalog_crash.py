"""A catalog run through Airflow's real processes: its worker SIGKILLed half-way, then Airflow's
retry resumes with 0 duplicate jobs; the triggerer restarted while the run is deferred; an
incremental run killed the same way, then a second run that finds nothing changed (0 jobs)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.airflow import Deployment, deployed
from tests.helpers.audio import wav_bytes
from tests.helpers.reliability import record

pytestmark = pytest.mark.crash

HERE = Path(__file__).resolve().parent
TRACKS = 40


@pytest.fixture(scope="module")
def deployment(
    musicai_emulator_server: Any, tmp_path_factory: pytest.TempPathFactory, airflow_db_template: Path
) -> Iterator[Deployment]:
    with deployed(
        tmp_path_factory.mktemp("catalog-crash") / "airflow-home",
        musicai_emulator_server,
        extra={"timeout": 10, "max_retries": 5, "retry_backoff": 0.2},
        dags=("musicai_catalog_worker_kill", "musicai_catalog_deferred", "musicai_catalog_incremental_kill"),
        db_template=airflow_db_template,
        dag_files=(HERE / "dags" / "musicai_catalog_crash_dags.py",),
        env={
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
        },
    ) as deployment:
        yield deployment


def _catalog(folder: Path) -> Path:
    data = wav_bytes(0.05)
    for n in range(TRACKS):
        (folder / f"t{n:03d}.wav").parent.mkdir(parents=True, exist_ok=True)
        (folder / f"t{n:03d}.wav").write_bytes(data)
    return folder


def _manifest(folder: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line) for part in folder.glob("part-*.jsonl") for line in part.read_text().splitlines()
    ]


@pytest.mark.parametrize(
    "dag_id", ["musicai_catalog_worker_kill", "musicai_catalog_deferred", "musicai_catalog_incremental_kill"]
)
def test_a_killed_worker_or_triggerer_costs_no_second_job(
    deployment: Deployment, musicai_emulator: Any, tmp_path: Path, dag_id: str
) -> None:
    emulator = musicai_emulator
    # Jobs of 1 s: a window's trigger often finds jobs final at once. The catalog trigger holds
    # its event 5 s after it starts (its default deferral_hold), so it never fires before the
    # scheduler processed the deferring worker's exit (Airflow 3's race, apache/airflow#67287,
    # #72716, would fail the resumed try); long jobs are not needed to dodge it. With
    # deferral_hold=0 in the DAG this run needed 2 tries: the scheduler logged "reported that the
    # task instance ... finished with state success, but the task instance's state attribute is
    # running" for the resumed try.
    emulator.admin.configure(queued_seconds=0, processing_seconds=1.0, max_concurrent_jobs=3)
    manifest = tmp_path / "manifest"
    run_id = f"{dag_id}-{time.time_ns()}"
    conf = {
        "catalog": str(_catalog(tmp_path / "catalog")),
        "manifest": str(manifest),
        "state": str(tmp_path / "state"),
    }
    deployment.trigger(run_id, conf, dag_id)
    deployment.wait_for("some tracks to be recorded", lambda: len(_manifest(manifest)) >= 6, timeout=300)
    created_at_kill = emulator.admin.counters()["jobs_created"]
    if dag_id != "musicai_catalog_deferred":

        def worker_pid() -> int | None:
            ((_, _, state, _, pid),) = deployment.tis(run_id, dag_id) or [(None,) * 5]
            return int(pid) if state == "running" and pid else None

        os.kill(deployment.wait_for("the worker", worker_pid), signal.SIGKILL)
    else:
        deployment.wait_for(
            "the deferral", lambda: deployment.ti_state(run_id, dag_id, "catalog") == "deferred"
        )
        deployment.restart("triggerer")
    deployment.wait_for(
        "the run to end", lambda: deployment.run_state(run_id, dag_id) in ("success", "failed"), timeout=400
    )
    assert deployment.run_state(run_id, dag_id) == "success", deployment.logs()[-6000:]
    lines = _manifest(manifest)
    assert sorted(line["source"] for line in lines) == [f"t{n:03d}.wav" for n in range(TRACKS)]
    assert emulator.admin.counters()["jobs_created"] == TRACKS  # not one duplicate
    ((_, _, _, tries, _),) = deployment.tis(run_id, dag_id)
    if dag_id == "musicai_catalog_deferred":
        # A triggerer restart costs no try, and the hold keeps every wake-up clear of the race
        # that would fail one (the scheduler's "state mismatch" on the resumed try).
        assert tries == 1, deployment.logs()[-6000:]
    if dag_id == "musicai_catalog_incremental_kill":  # what the killed try finished is in the state
        again = f"{run_id}-again"
        deployment.trigger(again, {**conf, "manifest": str(tmp_path / "manifest-again")}, dag_id)
        deployment.wait_for(
            "the second run",
            lambda: deployment.run_state(again, dag_id) in ("success", "failed"),
            timeout=300,
        )
        assert deployment.run_state(again, dag_id) == "success", deployment.logs()[-6000:]
        statuses = {line["status"] for line in _manifest(tmp_path / "manifest-again")}
        assert statuses == {"SKIPPED"} and len(_manifest(tmp_path / "manifest-again")) == TRACKS
        assert emulator.admin.counters()["jobs_created"] == TRACKS  # nothing paid twice
    record(
        "catalog_crash",
        dag_id,
        {"tracks": TRACKS, "jobs_created": TRACKS, "created_at_kill": created_at_kill, "tries": tries},
    )
