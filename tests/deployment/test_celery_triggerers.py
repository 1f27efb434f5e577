"""The catalog DAG on a production-shaped Airflow: PostgreSQL, Redis, CeleryExecutor with two
workers, scheduler, dag-processor, api-server and two triggerers, against the emulator with a
concurrent-job limit (jobs really queue). Mid-run one triggerer is SIGKILLed; its triggers move to
the other. Every task succeeds, one job per track, every result whole, no secret stored or logged.

Size: ``MUSICAI_DEPLOYMENT_TRACKS`` tracks; by default 100 (2,000 with
``MUSICAI_RELIABILITY_FULL=1``). 500 tracks do not fit the CI budget on 2 cores shared with other
work: 100 tracks (502 task instances) took 624 s in all (70 s to start, 458 s for the run, about
1.1 task instances per second through Celery), so 500 tracks would take about 40 minutes.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.deployment.services import postgres_server, redis_server
from tests.helpers.airflow import EXAMPLE_DAGS, Deployment
from tests.helpers.audio import write_wav
from tests.helpers.reliability import percentiles, record, secret_hits, signatures_in, size

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(3600)]

DAG_ID = "example_musicai_catalog"
TRACKS = int(os.environ.get("MUSICAI_DEPLOYMENT_TRACKS") or size(100, 2000))
POLL = 2.0
MAX_CONCURRENT_JOBS = 40


class Sampler(threading.Thread):
    """Every second: the peak RSS of each triggerer's process tree and the emulator's count of
    polling requests (job listings and single-job reads)."""

    def __init__(self, deployment: Deployment, names: list[str], emulator: Any) -> None:
        super().__init__(daemon=True)
        self.deployment, self.names, self.emulator = deployment, names, emulator
        self.peak: dict[str, int] = dict.fromkeys(names, 0)
        self.polls: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            requests = self.emulator.admin.counters()["requests"]
            polls = sum(n for endpoint, n in requests.items() if endpoint.startswith("GET /v1/job"))
            self.polls.append((time.monotonic(), polls))
            for name in self.names:
                process = self.deployment.processes.get(name)  # gone once killed
                if process is None:
                    continue
                try:
                    root = psutil.Process(process.pid)
                    rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                except psutil.Error:
                    continue
                self.peak[name] = max(self.peak[name], rss)


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[str, str]]:
    with postgres_server() as database, redis_server() as broker:
        yield database, broker


def _dag_file(folder: Path) -> Path:
    """The catalog example as written, but unscheduled: only the test's run runs."""
    source = (EXAMPLE_DAGS / "example_musicai_catalog.py").read_text()
    assert 'schedule="@daily"' in source
    path = folder / "example_musicai_catalog.py"
    path.write_text(source.replace('schedule="@daily"', "schedule=None"))
    return path


def _epoch(stamp: Any) -> float:
    if isinstance(stamp, datetime):
        return stamp.timestamp()
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()


def test_catalog_on_celery_with_two_triggerers_one_killed(
    services: tuple[str, str], musicai_emulator_server: Any, tmp_path: Path
) -> None:
    database, broker = services
    emulator = musicai_emulator_server
    emulator.admin.reset(blobs=True)
    # Jobs take a few poll intervals and at most MAX_CONCURRENT_JOBS run at once: the rest queue.
    emulator.admin.configure(
        queued_seconds=0, processing_seconds=3 * POLL, max_concurrent_jobs=MAX_CONCURRENT_JOBS
    )
    catalog, output = tmp_path / "catalog", tmp_path / "results"
    catalog.mkdir()
    for number in range(TRACKS):
        write_wav(catalog / f"track{number:05d}.wav", seconds=0.2)
    extra = {"timeout": 30, "max_retries": 8}
    connection = json.dumps({**emulator.connection_dict(), "extra": json.dumps(extra)})
    started = time.monotonic()
    deployment = Deployment(
        tmp_path / "airflow-home",
        connection,
        dag_files=(_dag_file(tmp_path),),
        database_url=database,
        celery_broker_url=broker,
        celery_workers=2,
        triggerers=2,
    )
    deployment.env.update(
        {
            "MUSICAI_EXAMPLE_POLL_INTERVAL": str(POLL),
            "MUSICAI_EXAMPLE_OUTPUT_DIR": str(tmp_path / "example"),
            "AIRFLOW__CORE__PARALLELISM": "64",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "256",
            "AIRFLOW__CORE__MAX_MAP_LENGTH": str(max(1024, TRACKS)),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "8",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            # Each triggerer takes at most 60% of the waits, so that both hold some (otherwise
            # the first to look takes every new trigger).
            "AIRFLOW__TRIGGERER__CAPACITY": str(max(2, -(-TRACKS * 6 // 10))),
            # A SIGKILLed triggerer's triggers move to the live one 10 s after its last heartbeat.
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
        }
    )
    deployment.cli("db", "migrate", timeout=600)
    deployment.start()
    triggerers = ["triggerer", "triggerer-2"]
    sampler = Sampler(deployment, triggerers, emulator)
    sampler.start()
    try:
        deployment.wait_for(
            "the catalog DAG to be parsed",
            lambda: deployment.query("SELECT dag_id FROM serialized_dag WHERE dag_id = ?", DAG_ID),
            timeout=300,
        )
        record("deployment", "harness_startup_seconds", round(time.monotonic() - started, 1))
        run_id = "catalog"
        conf = {"catalog": f"file://{catalog}", "output": f"file://{output}"}
        deployment.cli("dags", "trigger", DAG_ID, "--run-id", run_id, "--conf", json.dumps(conf))
        run_started = time.monotonic()

        def by_triggerer() -> dict[int, int]:
            rows = deployment.query(
                "SELECT triggerer_id, count(*) FROM trigger "
                "WHERE triggerer_id IS NOT NULL GROUP BY triggerer_id"
            )
            return {int(job): int(count) for job, count in rows}

        # Both triggerers hold deferred waits before one of them dies.
        def both() -> dict[int, int] | None:
            held = by_triggerer()
            return held if len(held) == 2 and min(held.values()) >= 2 else None

        spread = deployment.wait_for("deferred waits on both triggerers", both, timeout=1800)
        record("deployment", "triggers_per_triggerer_before_kill", sorted(spread.values()))
        owners = dict(deployment.query("SELECT id, triggerer_id FROM trigger WHERE triggerer_id IS NOT NULL"))
        killed_at = time.monotonic()
        deployment.kill("triggerer-2")
        del deployment.processes["triggerer-2"]
        # The job table does not say which process a triggerer job is: the dead one is the job
        # whose heartbeat stops.
        beats: dict[int, tuple[Any, float]] = {}

        def dead_job() -> int | None:
            now = time.monotonic()
            for job, beat in deployment.query(
                "SELECT id, latest_heartbeat FROM job WHERE job_type = 'TriggererJob' AND id IN (?, ?)",
                *spread,
            ):
                if beats.get(int(job), (None, 0.0))[0] != beat:
                    beats[int(job)] = (beat, now)
            stale = [job for job, (_, since) in beats.items() if now - since >= 5]
            return stale[0] if len(stale) == 1 else None

        victim = deployment.wait_for("the dead triggerer's heartbeat to stop", dead_job, timeout=300)
        held = {int(trigger) for trigger, owner in owners.items() if int(owner) == victim}

        def taken_over() -> bool:
            """Each trigger the dead triggerer held runs on the live one, or is done."""
            if not held:  # its waits all ended before it died
                return True
            rows = deployment.query(
                f"SELECT id, triggerer_id FROM trigger WHERE id IN ({', '.join('?' * len(held))})", *held
            )
            return all(owner is not None and int(owner) != victim for _, owner in rows)

        deployment.wait_for("the dead triggerer's triggers to move", taken_over, timeout=600)
        record("deployment", "takeover_seconds", round(time.monotonic() - killed_at, 1))
        record("deployment", "triggers_moved", len(held))

        deployment.wait_for(
            "the catalog run to finish",
            lambda: deployment.query(
                "SELECT state FROM dag_run "
                "WHERE dag_id = ? AND run_id = ? AND state IN ('success', 'failed')",
                DAG_ID,
                run_id,
            ),
            timeout=3600,
        )
        record("deployment", "run_seconds", round(time.monotonic() - run_started, 1))
        states = deployment.query(
            "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
            DAG_ID,
            run_id,
        )
        not_ok = [row for row in states if row[2] != "success"]
        assert not_ok == [], not_ok[:20]
        assert len(states) == 2 + 5 * TRACKS  # list_tracks, report; 5 tasks per track
        assert deployment.query("SELECT state FROM dag_run WHERE run_id = ?", run_id) == [("success",)]

        # Exactly one job per track, each deleted after its results were fetched.
        counters = emulator.admin.counters()
        assert counters["jobs_created"] == TRACKS
        assert counters["jobs_deleted"] == TRACKS
        # Every result present and whole: the files each download reported, at their full size.
        for number in range(TRACKS):
            folder = output / f"track{number:05d}"
            files = [path for path in folder.iterdir() if path.is_file()] if folder.is_dir() else []
            assert files, f"no results for track {number}"
            for path in files:
                assert path.stat().st_size > 0, path
                if path.suffix == ".json":
                    json.loads(path.read_text())

        # No key and no signature anywhere in PostgreSQL or in any log.
        text = deployment.logs()
        tables = [
            table
            for (table,) in deployment.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        for table in tables:
            text += "\n".join(repr(row) for row in deployment.query(f'SELECT * FROM "{table}"'))
        assert secret_hits(text, {emulator.api_key}) == []
        assert signatures_in(text) == set()
        assert counters["credential_leaks"] == 0

        # Figures.
        requests = counters["requests"]
        polls = sum(count for endpoint, count in requests.items() if endpoint.startswith("GET /v1/job"))
        record("deployment", "tracks", TRACKS)
        record("deployment", "api_requests", sum(requests.values()))
        record("deployment", "poll_requests", polls)
        peaks = {name: round(rss / 2**20) for name, rss in sampler.peak.items()}
        record("deployment", "peak_rss_mib_per_triggerer", peaks)
        record(
            "deployment",
            "poll_requests_per_cycle_2_triggerers",
            _per_cycle(sampler.polls, run_started, killed_at),
        )
        record(
            "deployment",
            "poll_requests_per_cycle_1_triggerer",
            _per_cycle(sampler.polls, killed_at, time.monotonic()),
        )
        record("deployment", "completion_to_resume_ms", _resume_delays(deployment, run_id))
    finally:
        sampler.stopped.set()
        deployment.stop()


def _per_cycle(samples: list[tuple[float, int]], start: float, end: float) -> dict[str, float]:
    """Median and max polling requests per poll interval between ``start`` and ``end`` (every
    triggerer's pollers together; the Celery workers only create, read once and delete jobs)."""
    inside = [(at, count) for at, count in samples if start <= at <= end]
    windows = []
    for (at, count), (later_at, later) in itertools.pairwise(inside):
        if later_at - at > 0:
            windows.append((later - count) * POLL / (later_at - at))
    if not windows:
        return {}
    ordered = sorted(windows)
    return {"median": round(ordered[len(ordered) // 2], 1), "max": round(ordered[-1], 1)}


def _resume_delays(deployment: Deployment, run_id: str) -> dict[str, float]:
    """From each job's completion (the emulator's completedAt, kept in XCom by the operator) to the
    end of its resumed ``analyze`` task."""
    rows = deployment.query(
        "SELECT t.map_index, t.end_date, x.value FROM task_instance t JOIN xcom x ON "
        "x.dag_id = t.dag_id AND x.run_id = t.run_id AND x.task_id = t.task_id AND x.map_index = t.map_index "
        "WHERE t.dag_id = ? AND t.run_id = ? AND t.task_id = ? AND x.key = 'return_value'",
        DAG_ID,
        run_id,
        "process_track.analyze",
    )
    delays = []
    for _, end, value in rows:
        document = value if isinstance(value, dict) else json.loads(value)
        completed = document.get("completedAt") or document.get("completed_at")
        if completed:
            delays.append(max(0.0, _epoch(end) - _epoch(completed)))
    return percentiles(delays)
