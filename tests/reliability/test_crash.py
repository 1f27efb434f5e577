"""Crashes: through Airflow's real processes (the scheduler and triggerer harness of
``tests/airflow/test_integration.py``), the worker running a task is SIGKILLed after its job was
created and before the task finished, and Airflow's retry reattaches (exactly one job); the
triggerer is restarted (SIGTERM, then SIGKILL) while N tasks are deferred, and all resume and
finish with exactly one job each. Uploads cut half-way (by the network, or by a SIGKILL of the
uploading process) leave no partial object and the retried upload is stored whole.

The jobs read their input from a loopback host that holds every request until the test releases
it, so they stay STARTED exactly as long as the test needs, whatever the machine's speed.

Run: ``pytest -m crash`` (``MUSICAI_RELIABILITY_FULL=1``: 100 deferred tasks instead of 10).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_musicai.hooks.musicai import MusicAIHook
from tests.helpers.airflow import REPO, Deployment, deployed
from tests.helpers.audio import wav_bytes
from tests.helpers.reliability import (
    CuttingProxy,
    GatedFileServer,
    record,
    route_uploads_through,
    secret_hits,
    size,
    wait_until,
)

pytestmark = pytest.mark.crash

HERE = Path(__file__).resolve().parent
DEFERRED = size(10, 100)
WORKER_KILL = "musicai_reliability_worker_kill"
DEFERRED_MANY = "musicai_reliability_deferred_many"


def live_triggerer(deployment: Deployment) -> int | None:
    """The id of the newest running triggerer job."""
    rows = deployment.query(
        "SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running' ORDER BY id DESC"
    )
    return int(rows[0][0]) if rows else None


def xcom_job_ids(deployment: Deployment, dag_id: str, run_id: str) -> list[str]:
    rows = deployment.query(
        "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND key = 'job_id'", dag_id, run_id
    )
    return [_xcom_text(value) for (value,) in rows]


def _xcom_text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode()
    decoded = json.loads(value) if isinstance(value, str) else value
    return str(decoded)


@pytest.fixture(scope="module")
def deployment(
    musicai_emulator_server: Any, tmp_path_factory: pytest.TempPathFactory, airflow_db_template: Path
) -> Iterator[Deployment]:
    """The integration harness with this suite's DAGs and fast triggerer failover."""
    started = time.monotonic()
    with deployed(
        tmp_path_factory.mktemp("crash") / "airflow-home",
        musicai_emulator_server,
        extra={"timeout": 10, "max_retries": 5, "retry_backoff": 0.2},
        dags=(WORKER_KILL, DEFERRED_MANY),
        db_template=airflow_db_template,
        dag_files=(HERE / "dags" / "musicai_reliability_dags.py",),
        env={
            # A SIGKILLed triggerer's triggers move to a live one after 5 s without heartbeat.
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
        },
    ) as deployment:
        record("crash", "harness_startup_seconds", round(time.monotonic() - started, 1))
        yield deployment


@pytest.fixture
def gate() -> Iterator[GatedFileServer]:
    server = GatedFileServer(wav_bytes())
    yield server
    server.close()


@pytest.fixture
def held_jobs(emulator: Any) -> Any:
    """The emulator waits up to 10 minutes for an input (the gate holds it)."""
    emulator.admin.configure(queued_seconds=0, processing_seconds=0.2, input_timeout_seconds=600)
    return emulator


def _scan_deployment(deployment: Deployment, emulator: Any) -> None:
    """No key and no signature in the real processes' logs and database (trigger rows included)."""
    text = deployment.logs()
    for table in ("xcom", "trigger", "task_instance", "rendered_task_instance_fields", "dag_run"):
        text += "\n".join(repr(row) for row in deployment.query(f"SELECT * FROM {table}"))
    assert secret_hits(text, {emulator.api_key, "X-Signature="}) == []
    assert emulator.admin.counters()["credential_leaks"] == 0


KILL_MOMENTS = {
    # POST /job was handled but its answer is slow: the worker dies not knowing the job's id.
    "before-the-answer": {"script": [{"match": "POST /v1/job", "fault": "slow", "seconds": 8}]},
    # The worker knows and recorded the job, and is polling it.
    "while-waiting": None,
}


# "before-the-answer" in the support matrix: reattaching reads the task state store (Airflow 3.3) or
# scans by idempotency key (older), the path that differs most between versions.
@pytest.mark.parametrize(
    "moment",
    [pytest.param(m, marks=pytest.mark.compat) if m == "before-the-answer" else m for m in KILL_MOMENTS],
)
def test_sigkill_of_the_worker_then_a_retry_reattaches(
    deployment: Deployment, held_jobs: Any, gate: GatedFileServer, moment: str
) -> None:
    emulator = held_jobs
    faults = KILL_MOMENTS[moment]
    if faults:
        emulator.admin.set_faults(faults)
    run_id = f"kill-{moment}-{random.randrange(10**6)}"
    started = time.monotonic()
    deployment.trigger(run_id, {"url": gate.url}, WORKER_KILL)
    deployment.wait_for("the job to be created", lambda: emulator.admin.counters()["jobs_created"] == 1)
    [job_id] = [job["id"] for job in emulator.admin.jobs()]
    if moment == "while-waiting":
        deployment.wait_for(
            "the worker to poll",
            lambda: emulator.admin.counters()["requests"].get("GET /v1/job/{id}/status", 0) >= 2,
        )
    ((_, _, state, tries, pid),) = deployment.tis(run_id, WORKER_KILL)
    assert state == "running" and tries == 1 and pid, (state, tries, pid)
    os.kill(int(pid), signal.SIGKILL)
    killed_at = time.monotonic()
    emulator.admin.clear_faults()

    deployment.wait_for(
        "the retry to run", lambda: deployment.tis(run_id, WORKER_KILL)[0][3] >= 2, timeout=240
    )
    # The gate holds the job STARTED until the retry has said it reattached: counting status
    # requests instead would race with the killed try's last polls on a busy machine, and let the
    # job finish before the retry looked at it.
    how = deployment.wait_for(
        "the retry's log line",
        lambda: re.search(rf"reattaching to job ({job_id}) of an earlier try \(([^)]*)\)", deployment.logs()),
        timeout=240,
    )
    assert emulator.admin.jobs()[0]["status"] == "STARTED"  # reattached to a job still running
    gate.release()
    deployment.wait_for(
        "the run to end",
        lambda: deployment.run_state(run_id, WORKER_KILL) in ("success", "failed"),
        timeout=240,
    )
    assert deployment.run_state(run_id, WORKER_KILL) == "success", deployment.logs()[-6000:]
    ((_, _, _, tries, _),) = deployment.tis(run_id, WORKER_KILL)
    jobs = emulator.admin.jobs()
    assert emulator.admin.counters()["jobs_created"] == 1 and len(jobs) == 1, jobs
    assert jobs[0]["status"] == "SUCCEEDED"
    assert xcom_job_ids(deployment, WORKER_KILL, run_id) == [jobs[0]["id"]]
    assert how.group(1) == jobs[0]["id"]
    _scan_deployment(deployment, emulator)
    record(
        "crash",
        f"worker_sigkill_{moment}",
        {
            "tries": tries,
            "jobs_created": 1,
            "retry": how.group(2),
            "seconds_from_kill_to_success": round(time.monotonic() - killed_at, 1),
            "seconds_total": round(time.monotonic() - started, 1),
        },
    )


def test_triggerer_restarts_while_tasks_are_deferred(
    deployment: Deployment, held_jobs: Any, gate: GatedFileServer
) -> None:
    emulator = held_jobs
    run_id = f"deferred-{random.randrange(10**6)}"
    started = time.monotonic()
    deployment.trigger(run_id, {"url": gate.url, "count": DEFERRED}, DEFERRED_MANY)

    def deferred() -> int:
        return sum(
            1 for row in deployment.tis(run_id, DEFERRED_MANY) if row[0] == "job" and row[2] == "deferred"
        )

    deployment.wait_for(
        f"{DEFERRED} tasks to defer", lambda: deferred() == DEFERRED, timeout=60 + 12 * DEFERRED
    )
    deferred_after = time.monotonic() - started
    assert emulator.admin.counters()["jobs_created"] == DEFERRED

    failover: dict[str, float] = {}
    for how in (signal.SIGTERM, signal.SIGKILL):
        before = live_triggerer(deployment)
        stopped = time.monotonic()
        deployment.restart("triggerer", how)
        deployment.wait_for(
            f"a new triggerer to take every trigger after {how.name}",
            lambda before=before: (
                (new := live_triggerer(deployment)) not in (None, before)
                and deployment.query("SELECT COUNT(*) FROM trigger WHERE triggerer_id = ?", new)[0][0]
                == DEFERRED
            ),
            timeout=120,
        )
        failover[how.name] = round(time.monotonic() - stopped, 1)
        assert deferred() == DEFERRED, "a restart moved tasks out of DEFERRED"
        assert emulator.admin.counters()["jobs_deleted"] == 0, f"a {how.name} restart deleted jobs"

    gate.release()
    released = time.monotonic()
    deployment.wait_for(
        "the run to end",
        lambda: deployment.run_state(run_id, DEFERRED_MANY) in ("success", "failed"),
        timeout=120 + 12 * DEFERRED,
    )
    assert deployment.run_state(run_id, DEFERRED_MANY) == "success", deployment.logs()[-6000:]
    rows = [row for row in deployment.tis(run_id, DEFERRED_MANY) if row[0] == "job"]
    assert len(rows) == DEFERRED and {row[2] for row in rows} == {"success"}
    counters = emulator.admin.counters()
    assert counters["jobs_created"] == DEFERRED and counters["jobs_deleted"] == 0
    jobs = emulator.admin.jobs()
    assert {job["status"] for job in jobs} == {"SUCCEEDED"} and len(jobs) == DEFERRED
    ids = xcom_job_ids(deployment, DEFERRED_MANY, run_id)
    assert sorted(ids) == sorted(job["id"] for job in jobs), "a task holds another task's job"
    _scan_deployment(deployment, emulator)
    record(
        "crash",
        "triggerer_restarts",
        {
            "deferred_tasks": DEFERRED,
            "restarts": list(failover),
            "seconds_until_a_new_triggerer_held_every_trigger": failover,
            "jobs_created": counters["jobs_created"],
            "jobs_deleted": counters["jobs_deleted"],
            "task_retries": sum(1 for row in rows if row[3] > 1),
            "seconds_to_defer_all": round(deferred_after, 1),
            "seconds_from_release_to_success": round(time.monotonic() - released, 1),
        },
    )


# -- uploads cut half-way -------------------------------------------------------------------------

UPLOAD_BYTES = 8 * 1024 * 1024


def _source(tmp_path: Path) -> tuple[Path, str]:
    data = random.Random(5).randbytes(UPLOAD_BYTES)
    path = tmp_path / "big.wav"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def _stored(emulator: Any, url: str) -> str:
    import requests

    return hashlib.sha256(requests.get(url, timeout=30).content).hexdigest()


def test_an_upload_cut_half_way_is_retried_and_stored_whole(
    emulator: Any, connect: Any, tmp_path: Path
) -> None:
    connect(max_retries=3, retry_backoff=0.05, timeout=30)
    path, digest = _source(tmp_path)
    storage_port = int(emulator.storage_url.rsplit(":", 1)[1])
    proxy = CuttingProxy(storage_port, cut_after=UPLOAD_BYTES // 2)
    hook = MusicAIHook()
    route_uploads_through(proxy.port, hook)
    try:
        url = hook.upload_file(path)
    finally:
        proxy.close()
        hook.close()
    assert proxy.reached.is_set() and proxy.connections == 2
    wait_until("the partial upload to be dropped", lambda: emulator.admin.storage()["temp_files"] == 0)
    counters = emulator.admin.counters()
    assert counters["objects_stored"] == 1 and counters["bytes_stored"] == UPLOAD_BYTES
    assert _stored(emulator, url) == digest
    record("crash", "upload_cut_by_the_network", {"bytes": UPLOAD_BYTES, "attempts": 2, "stored_whole": True})


UPLOADER = """
import json
from tests.helpers.reliability import route_uploads_through
from airflow_provider_musicai.hooks.musicai import MusicAIHook

hook = MusicAIHook()
route_uploads_through({port}, hook)
print(json.dumps({{"url": hook.upload_file({path!r})}}), flush=True)
"""


def test_an_uploader_killed_half_way_leaves_nothing_and_the_retry_is_whole(
    emulator: Any, connect: Any, tmp_path: Path
) -> None:
    connect(max_retries=0, timeout=30)
    path, digest = _source(tmp_path)
    storage_port = int(emulator.storage_url.rsplit(":", 1)[1])
    proxy = CuttingProxy(storage_port, cut_after=UPLOAD_BYTES // 2, hold=True)
    try:
        outcomes = []
        for attempt in (1, 2):  # the first process is killed half-way; the second is Airflow's retry
            code = UPLOADER.format(port=proxy.port, path=str(path))
            process = subprocess.Popen(
                [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
            )
            if attempt == 1:
                assert proxy.reached.wait(60), "the upload never got half-way"
                # The proxy has forwarded half the bytes: the storage holds them as a temp file
                # once it has read them (a moment later on a busy machine).
                wait_until("half a file on the storage", lambda: emulator.admin.storage()["temp_files"] == 1)
                process.kill()
                process.wait(30)
                wait_until(
                    "the storage to drop the half file", lambda: emulator.admin.storage()["temp_files"] == 0
                )
                assert emulator.admin.counters()["objects_stored"] == 0
            else:
                out, _ = process.communicate(timeout=120)
                outcomes.append(json.loads(out.splitlines()[-1]))
    finally:
        proxy.close()
    counters = emulator.admin.counters()
    assert counters["objects_stored"] == 1 and counters["bytes_stored"] == UPLOAD_BYTES
    assert _stored(emulator, outcomes[0]["url"]) == digest
    record("crash", "uploader_sigkilled_half_way", {"bytes": UPLOAD_BYTES, "partial_objects_left": 0})
