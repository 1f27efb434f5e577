"""One run through Airflow's real processes: a deferred task is resumed by the triggerer process,
and marking a deferred task failed deletes its job (from the triggerer).

Airflow 3: ``api-server`` (execution API only), ``scheduler`` (LocalExecutor), ``dag-processor``
and ``triggerer``. Airflow 2.11: ``scheduler`` (which parses DAGs itself) and ``triggerer``, with
the SequentialExecutor, the only one Airflow 2 accepts on SQLite. All on a fresh SQLite database in
a temporary AIRFLOW_HOME. The test reads Airflow's state straight from that SQLite file.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
DAG_ID = "musicai_integration"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def airflow_major() -> int:
    from airflow import __version__

    return int(__version__.split(".")[0])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Deployment:
    """A private Airflow: its environment, its processes and a read-only view of its database."""

    def __init__(self, home: Path, connection: str) -> None:
        self.home = home
        self.db = home / "airflow.db"
        dags = home / "dags"
        dags.mkdir(parents=True)
        shutil.copy(HERE / "integration_dags" / "musicai_integration_dag.py", dags)
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("AIRFLOW") and not key.startswith("PYTEST")
        }
        self.env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db}",
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "2",
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "2",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW_CONN_MUSICAI_DEFAULT": connection,
                "PYTHONUNBUFFERED": "1",
                # Executors start tasks with the ``airflow`` command: this interpreter's.
                "PATH": os.pathsep.join([str(Path(AIRFLOW).parent), os.environ.get("PATH", "")]),
            }
        )
        if airflow_major() >= 3:
            port = free_port()
            self.env.update(
                {
                    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
                    "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
                    "AIRFLOW__API__PORT": str(port),
                }
            )
            self.commands = {
                "api-server": [
                    "api-server",
                    "--apps",
                    "execution",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                "dag-processor": ["dag-processor"],
                "scheduler": ["scheduler"],
                "triggerer": ["triggerer"],
            }
        else:
            self.env["AIRFLOW__CORE__EXECUTOR"] = "SequentialExecutor"
            self.commands = {"scheduler": ["scheduler"], "triggerer": ["triggerer"]}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def cli(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run(
            [AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        assert done.returncode == 0, (
            f"airflow {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
        return done.stdout

    def start(self) -> None:
        for name, args in self.commands.items():
            log = (self.home / f"{name}.log").open("wb")
            self.processes[name] = subprocess.Popen(
                [AIRFLOW, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait(5)

    def logs(self) -> str:
        """Every process log and every task log."""
        files = [*self.home.glob("*.log"), *(self.home / "logs").rglob("*.log")]
        return "\n".join(path.read_text(errors="replace") for path in files if path.is_file())

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as db:
            try:
                return db.execute(sql, params).fetchall()
            except sqlite3.OperationalError:  # table not created yet, or locked
                return []

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 180) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                assert process.poll() is None, f"airflow {name} exited:\n{self.logs()[-5000:]}"
            value = check()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; logs:\n{self.logs()[-8000:]}")

    def ti_state(self, run_id: str) -> str | None:
        rows = self.query(
            "SELECT state FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = 'job'",
            DAG_ID,
            run_id,
        )
        return rows[0][0] if rows else None

    def run_state(self, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", DAG_ID, run_id)
        return rows[0][0] if rows else None

    def trigger(self, run_id: str, conf: dict[str, Any]) -> None:
        self.cli("dags", "trigger", DAG_ID, "--run-id", run_id, "--conf", json.dumps(conf))


@pytest.fixture
def deployment(musicai: Any, tmp_path: Path) -> Iterator[Deployment]:
    connection = json.dumps({**musicai.connection_dict(), "extra": json.dumps({"timeout": 10})})
    deployment = Deployment(tmp_path / "airflow-home", connection)
    deployment.cli("db", "migrate")
    deployment.start()
    try:
        yield deployment
    finally:
        deployment.stop()


def test_the_triggerer_resumes_the_deferred_task_and_a_kill_deletes_the_job(
    deployment: Deployment, musicai: Any, hook: Any, input_url: Any
) -> None:
    sealed = hook.seal(input_url())
    deployment.wait_for(
        "the DAG to be parsed",
        lambda: deployment.query("SELECT 1 FROM serialized_dag WHERE dag_id = ?", DAG_ID),
    )

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
