"""Both catalog DAGs at once on a production-shaped Airflow: PostgreSQL, Redis, CeleryExecutor with
two workers, scheduler, dag-processor, api-server and two triggerers, against the emulator with a
concurrent-job limit (jobs really queue).

* ``example_musicai_catalog_at_scale``: one ``MusicAICatalogOperator`` task over
  ``MUSICAI_DEPLOYMENT_CATALOG_TRACKS`` tracks (500; 2,000 with ``MUSICAI_RELIABILITY_FULL=1``), one
  trigger that re-defers as its window of jobs slides;
* ``example_musicai_catalog``: five mapped task instances per track over
  ``MUSICAI_DEPLOYMENT_TRACKS`` tracks (100; 2,000 in full), one deferred wait per track, spread over
  both triggerers. At about 1.1 task instances per second through Celery on 2 cores, 500 mapped
  tracks (2,502 task instances) would take about 40 minutes: the mapped DAG stays at 100 in CI,
  which is why the catalog operator exists.

Mid-run the triggerer that holds the catalog's trigger is SIGKILLed; its triggers move to the other.
Every task succeeds, one job per track, every result whole, no secret stored or logged.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
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
from tests.helpers.reliability import (
    percentiles,
    poller_summaries,
    record,
    secret_hits,
    signatures_in,
    size,
)

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(3600)]

DAG_ID = "example_musicai_catalog"
TRACKS = int(os.environ.get("MUSICAI_DEPLOYMENT_TRACKS") or size(100, 2000))
CATALOG_DAG_ID = "example_musicai_catalog_at_scale"
CATALOG_TRACKS = int(os.environ.get("MUSICAI_DEPLOYMENT_CATALOG_TRACKS") or size(500, 2000))
POLL = 2.0
MAX_CONCURRENT_JOBS = 40
#: Seconds between the shared pollers' summary lines, read per triggerer from their logs.
POLLER_LOG_INTERVAL = 10.0
TRIGGERERS = ["triggerer", "triggerer-2"]


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


def _dag_file(folder: Path, dag_id: str) -> Path:
    """An example DAG as written, but unscheduled: only the test's run runs."""
    source = (EXAMPLE_DAGS / f"{dag_id}.py").read_text()
    assert 'schedule="@daily"' in source
    path = folder / f"{dag_id}.py"
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
    big_catalog, big_output = tmp_path / "big-catalog", tmp_path / "big-results"
    for folder, count in ((catalog, TRACKS), (big_catalog, CATALOG_TRACKS)):
        folder.mkdir()
        for number in range(count):
            write_wav(folder / f"track{number:05d}.wav", seconds=0.2)
    extra = {"timeout": 30, "max_retries": 8}
    connection = json.dumps({**emulator.connection_dict(), "extra": json.dumps(extra)})
    started = time.monotonic()
    deployment = Deployment(
        tmp_path / "airflow-home",
        connection,
        dag_files=(_dag_file(tmp_path, DAG_ID), _dag_file(tmp_path, CATALOG_DAG_ID)),
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
            "AIRFLOW__MUSICAI__POLLER_LOG_INTERVAL": str(POLLER_LOG_INTERVAL),
        }
    )
    deployment.cli("db", "migrate", timeout=600)
    # The triggerers start one after the other, so that each process is known by its job id.
    for name in deployment.commands:
        if name != "triggerer-2":
            deployment.start_one(name)
    job_of: dict[str, int] = {}
    for name in TRIGGERERS:
        if name != "triggerer":
            deployment.start_one(name)
        job_of[name] = deployment.wait_for(
            f"{name}'s triggerer job",
            lambda: next(
                (
                    int(job)
                    for (job,) in deployment.query(
                        "SELECT id FROM job WHERE job_type = 'TriggererJob' ORDER BY id"
                    )
                    if int(job) not in job_of.values()
                ),
                None,
            ),
            timeout=300,
        )
    sampler = Sampler(deployment, TRIGGERERS, emulator)
    sampler.start()
    try:
        for dag_id in (DAG_ID, CATALOG_DAG_ID):
            deployment.wait_for(
                f"{dag_id} to be parsed",
                lambda dag_id=dag_id: deployment.query(
                    "SELECT dag_id FROM serialized_dag WHERE dag_id = ?", dag_id
                ),
                timeout=300,
            )
        record("deployment", "harness_startup_seconds", round(time.monotonic() - started, 1))
        run_id = "catalog"
        conf = {"catalog": f"file://{catalog}", "output": f"file://{output}"}
        deployment.cli("dags", "trigger", DAG_ID, "--run-id", run_id, "--conf", json.dumps(conf))
        # No logical date: the example writes under the date the run was triggered.
        big_conf = {"catalog": f"file://{big_catalog}", "output": f"file://{big_output}"}
        deployment.cli("dags", "trigger", CATALOG_DAG_ID, "--run-id", run_id, "--conf", json.dumps(big_conf))
        run_started = time.monotonic()

        def by_triggerer() -> dict[int, int]:
            rows = deployment.query(
                "SELECT triggerer_id, count(*) FROM trigger "
                "WHERE triggerer_id IS NOT NULL GROUP BY triggerer_id"
            )
            return {int(job): int(count) for job, count in rows}

        def catalog_triggerer() -> int | None:
            """The triggerer job running the catalog task's trigger, once it runs somewhere."""
            rows = deployment.query(
                "SELECT t.triggerer_id FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id "
                "WHERE ti.dag_id = ? AND ti.run_id = ? AND ti.task_id = 'catalog' AND ti.state = 'deferred'",
                CATALOG_DAG_ID,
                run_id,
            )
            return int(rows[0][0]) if rows and rows[0][0] is not None else None

        # Deferred waits spread over both triggerers (each has held some), then the one running the
        # catalog's trigger dies while it holds it. The mapped waits come and go a few at a time
        # (Celery starts about one task instance a second), so the spread is what each triggerer
        # has held so far, not a single instant's count.
        most_held: dict[int, int] = {}

        def spread_and_catalog_deferred() -> int | None:
            for job, count in by_triggerer().items():
                most_held[job] = max(most_held.get(job, 0), count)
            owner = catalog_triggerer()
            return owner if len(most_held) == 2 and owner is not None else None

        victim = deployment.wait_for(
            "waits on both triggerers and the catalog deferred", spread_and_catalog_deferred, timeout=1800
        )
        record("deployment", "most_triggers_held_per_triggerer_before_kill", sorted(most_held.values()))
        owners = dict(deployment.query("SELECT id, triggerer_id FROM trigger WHERE triggerer_id IS NOT NULL"))
        killed = next(name for name, job in job_of.items() if job == victim)
        killed_at = time.monotonic()
        deployment.kill(killed)
        del deployment.processes[killed]
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
        record("deployment", "killed", killed)

        deployment.wait_for(
            "both catalog runs to finish",
            lambda: (
                len(
                    deployment.query(
                        "SELECT state FROM dag_run WHERE run_id = ? AND state IN ('success', 'failed')",
                        run_id,
                    )
                )
                == 2
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
        assert deployment.query(
            "SELECT dag_id, state FROM dag_run WHERE run_id = ? ORDER BY dag_id", run_id
        ) == [(DAG_ID, "success"), (CATALOG_DAG_ID, "success")]
        _check_catalog_operator_run(deployment, run_id, big_output)

        # Exactly one job per track, each deleted after its results were fetched.
        counters = emulator.admin.counters()
        assert counters["jobs_created"] == TRACKS + CATALOG_TRACKS
        assert counters["jobs_deleted"] == TRACKS + CATALOG_TRACKS
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
        record("deployment", "catalog_operator_tracks", CATALOG_TRACKS)
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
        for name in TRIGGERERS:
            record("deployment", f"poller_requests_per_cycle_{name}", _poller_summary(deployment, name))
    finally:
        sampler.stopped.set()
        deployment.stop()


def _check_catalog_operator_run(deployment: Deployment, run_id: str, output: Path) -> None:
    """The catalog operator's run: three task instances whatever the size, a manifest line and
    results for every track, a summary in XCom."""
    states = deployment.query(
        "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ? ORDER BY task_id",
        CATALOG_DAG_ID,
        run_id,
    )
    assert states == [("catalog", "success"), ("report", "success"), ("seed_demo_catalog", "success")]
    (day,) = [path for path in output.iterdir() if path.is_dir()]
    parts = sorted(day.rglob("part-*.jsonl"))
    lines = [json.loads(line) for part in parts for line in part.read_text().splitlines()]
    assert sorted(line["source"] for line in lines) == [f"track{n:05d}.wav" for n in range(CATALOG_TRACKS)]
    failed = [line for line in lines if line["status"] != "SUCCEEDED"]
    assert failed == [], failed[:5]
    assert len({line["job_id"] for line in lines}) == CATALOG_TRACKS
    for number in range(CATALOG_TRACKS):
        files = list((day / f"track{number:05d}").iterdir())
        assert files and all(path.stat().st_size > 0 for path in files), number
    (summary,) = deployment.query(
        "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = 'report' "
        "AND key = 'return_value'",
        CATALOG_DAG_ID,
        run_id,
    )[0]
    summary = summary if isinstance(summary, dict) else json.loads(summary)
    assert (summary["total"], summary["succeeded"], summary["failed"]) == (CATALOG_TRACKS, CATALOG_TRACKS, 0)


def _poller_summary(deployment: Deployment, name: str) -> dict[str, Any]:
    """From one triggerer's log: its shared poller's requests per cycle (median, max over the
    summary lines) and its requests in all."""
    path = deployment.home / f"{name}.log"
    found = poller_summaries(path.read_text(errors="replace")) if path.exists() else []
    lines = [(line["cycles"], line["requests"]) for line in found if line["cycles"]]
    if not lines:
        return {}
    per_cycle = [requests / cycles for cycles, requests in lines]
    return {
        "lines": len(lines),
        "median": round(statistics.median(per_cycle), 1),
        "max": round(max(per_cycle), 1),
        "requests": sum(requests for _, requests in lines),
    }


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
