"""A catalog run through Airflow's real processes: its worker SIGKILLed half-way, then Airflow's
retry resumes with 0 duplicate jobs; the triggerer restarted while the run is deferred."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.airflow import AIRFLOW, Deployment
from tests.helpers.audio import wav_bytes
from tests.helpers.reliability import record

pytestmark = pytest.mark.crash

HERE = Path(__file__).resolve().parent
TRACKS = 40


class CatalogDeployment(Deployment):
    def __init__(self, home: Path, connection: str) -> None:
        super().__init__(home, connection)
        shutil.copy(HERE / "dags" / "musicai_catalog_crash_dags.py", home / "dags")
        self.env.update(
            {
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
            }
        )

    def restart(self, name: str) -> None:
        process = self.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        with (self.home / f"{name}.restarted.log").open("wb") as log:
            self.processes[name] = subprocess.Popen(
                [AIRFLOW, *self.commands[name]],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def ti(self, dag_id: str, run_id: str) -> tuple[Any, ...] | None:
        rows = self.query(
            "SELECT state, try_number, pid FROM task_instance WHERE dag_id = ? AND run_id = ?", dag_id, run_id
        )
        return rows[0] if rows else None

    def run_state(self, run_id: str, dag_id: str = "") -> str | None:  # type: ignore[override]
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return rows[0][0] if rows else None


@pytest.fixture(scope="module")
def deployment(
    musicai_emulator_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CatalogDeployment]:
    extra = {"timeout": 10, "max_retries": 5, "retry_backoff": 0.2}
    connection = json.dumps({**musicai_emulator_server.connection_dict(), "extra": json.dumps(extra)})
    deployment = CatalogDeployment(tmp_path_factory.mktemp("catalog-crash") / "airflow-home", connection)
    deployment.cli("db", "migrate")
    deployment.start()
    try:
        deployment.wait_for(
            "the DAGs to be parsed",
            lambda: (
                len(
                    deployment.query(
                        "SELECT dag_id FROM serialized_dag WHERE dag_id LIKE 'musicai_catalog_%'"
                    )
                )
                == 2
            ),
        )
        yield deployment
    finally:
        deployment.stop()


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


@pytest.mark.parametrize("dag_id", ["musicai_catalog_worker_kill", "musicai_catalog_deferred"])
def test_a_killed_worker_or_triggerer_costs_no_second_job(
    deployment: CatalogDeployment, musicai_emulator: Any, tmp_path: Path, dag_id: str
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
    conf = {"catalog": str(_catalog(tmp_path / "catalog")), "manifest": str(manifest)}
    deployment.cli("dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(conf))
    deployment.wait_for("some tracks to be recorded", lambda: len(_manifest(manifest)) >= 6, timeout=300)
    created_at_kill = emulator.admin.counters()["jobs_created"]
    if dag_id == "musicai_catalog_worker_kill":
        _, _, pid = deployment.wait_for(
            "the worker",
            lambda: (ti := deployment.ti(dag_id, run_id)) and ti[0] == "running" and ti[2] and ti,
        )
        os.kill(int(pid), signal.SIGKILL)
    else:
        deployment.wait_for(
            "the deferral", lambda: (ti := deployment.ti(dag_id, run_id)) and ti[0] == "deferred"
        )
        deployment.restart("triggerer")
    deployment.wait_for(
        "the run to end", lambda: deployment.run_state(run_id, dag_id) in ("success", "failed"), timeout=400
    )
    assert deployment.run_state(run_id, dag_id) == "success", deployment.logs()[-6000:]
    lines = _manifest(manifest)
    assert sorted(line["source"] for line in lines) == [f"t{n:03d}.wav" for n in range(TRACKS)]
    assert emulator.admin.counters()["jobs_created"] == TRACKS  # not one duplicate
    _, tries, _ = deployment.ti(dag_id, run_id) or (None, None, None)
    if dag_id == "musicai_catalog_deferred":
        # A triggerer restart costs no try, and the hold keeps every wake-up clear of the race
        # that would fail one (the scheduler's "state mismatch" on the resumed try).
        assert tries == 1, deployment.logs()[-6000:]
    record(
        "catalog_crash",
        dag_id,
        {"tracks": TRACKS, "jobs_created": TRACKS, "created_at_kill": created_at_kill, "tries": tries},
    )
