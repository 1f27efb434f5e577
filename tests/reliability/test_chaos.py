"""Chaos: the chain and catalog example DAGs under 20% injected faults on the API and on storage
(429 with Retry-After, 500, 502, 503, dropped connections before and after the request was handled,
answers slower than the read timeout, truncated answers). The DAGs must succeed with exactly the
jobs they intend (no duplicate), every result downloaded intact (checksums against the emulator's
stored objects); retries and the time they added are recorded.

Run: ``pytest -m chaos`` (``MUSICAI_RELIABILITY_FULL=1``: a 50-track catalog instead of 6).
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.airflow import load_example, run_dag, task_column, task_states, xcom_value
from tests.helpers.audio import wav_bytes
from tests.helpers.reliability import (
    blob_digests,
    counting_retries,
    leftover_partials,
    record,
    sha256_file,
    size,
    wait_until,
)

pytestmark = [pytest.mark.chaos, pytest.mark.usefixtures("airflow_db")]

TRACKS = size(6, 50)
SEED = int(os.environ.get("MUSICAI_RELIABILITY_SEED", "20251125"))
#: The read timeout is shorter than a "slow" answer, so slow answers are timeouts to survive.
CONNECTION = {
    "timeout": 1.0,
    "connect_timeout": 1.0,
    "max_retries": 10,
    "retry_backoff": 0.05,
    "retry_max_wait": 0.5,
    "retry_max_time": 120,
}
FAULTS = {
    # On top of the 20%: the first job creations lose their answer (handled, then dropped; refused
    # with a 503; handled, then slower than the read timeout), so every run proves no duplicate.
    "script": [
        {"match": "POST /v1/job", "fault": "drop_after"},
        {"match": "POST /v1/job", "fault": "503"},
        {"match": "POST /v1/job", "fault": "slow"},
    ],
    "rate": 0.2,
    "scope": "both",
    "weights": dict.fromkeys(["429", "500", "502", "503", "drop", "drop_after", "slow", "truncate"], 1),
    "retry_after": 1,
    "slow_seconds": 1.5,
}


def no_retry_delay(dag: Any) -> Any:
    """Keep the examples' task retries, not their delays (dag.test() would sleep through them)."""
    for task in dag.tasks:
        task.retry_delay = timedelta(0)
    return dag


def task_tries(dag_run: Any) -> dict[str, int]:
    """``{task: try_number}`` of the tasks that needed more than one try."""
    tries = task_column(dag_run, "try_number")
    return {task: int(number) for task, number in tries.items() if int(number or 1) > 1}


def check_files_intact(files: list[Path], digests: dict[str, int]) -> int:
    """Every downloaded result file is byte for byte one of the objects the emulator stores."""
    for path in files:
        digest = sha256_file(path)
        assert digest in digests, f"{path} matches no stored object (corrupted or truncated download)"
        assert digests[digest] == path.stat().st_size
    return len(files)


def run_under_faults(
    emulator: Any, spy: Any, dag: Any, conf: dict[str, Any], chaos: bool
) -> tuple[Any, float, dict[str, Any]]:
    """Run ``dag`` (with faults if ``chaos``); return the run, its duration and what it cost."""
    emulator.admin.reset()
    emulator.admin.configure(queued_seconds=0.2, processing_seconds=0.3)
    if chaos:
        emulator.admin.set_faults({**FAULTS, "seed": SEED})
    spy.ambiguous_creates = 0
    with counting_retries() as retries:
        started = time.monotonic()
        dag_run = run_dag(no_retry_delay(dag), conf)
        took = time.monotonic() - started
    emulator.admin.clear_faults()
    wait_until("no partial upload", lambda: emulator.admin.storage()["temp_files"] == 0)
    counters = emulator.admin.counters()
    cost = {
        "seconds": round(took, 1),
        "requests": counters["requests_total"],
        "faults_injected": counters["faults_total"],
        "faults_by_kind": dict(sorted(counters["faults"].items())),
        "client_retries": retries.total,
        "client_retries_by_call": dict(sorted(retries.retries.items())),
        "backoff_slept_seconds": round(retries.backoff_seconds, 1),
        "ambiguous_job_creations_resolved": spy.ambiguous_creates,
        "task_retries": task_tries(dag_run),
        "jobs_created": counters["jobs_created"],
        "credential_leaks": counters["credential_leaks"],
    }
    return dag_run, took, cost


def test_chain_survives_twenty_percent_faults(
    emulator: Any, connect: Any, spy: Any, storage_dir: Path, tmp_path: Path
) -> None:
    connect(**CONNECTION)
    dag = load_example("example_musicai_chain")
    run_under_faults(emulator, spy, dag, {"output_dir": str(tmp_path / "warm-up")}, False)
    output = tmp_path / "chaos"
    dag_run, took, cost = run_under_faults(emulator, spy, dag, {"output_dir": str(output)}, True)
    blobs = blob_digests(storage_dir)  # the next run resets the emulator
    _, baseline, _ = run_under_faults(emulator, spy, dag, {"output_dir": str(tmp_path / "calm")}, False)

    states = task_states(dag_run)
    assert set(states.values()) == {"success"}, (states, cost)
    assert cost["jobs_created"] == 2, cost  # stems + lyrics: no duplicate
    assert cost["ambiguous_job_creations_resolved"] >= 2, cost
    assert cost["faults_injected"] > 0 and cost["credential_leaks"] == 0

    stems = xcom_value(dag_run, "download_stems")
    lyrics = xcom_value(dag_run, "download_lyrics")
    files = [Path(p) for p in {*stems.values(), *lyrics.values()} if not p.endswith("result.json")]
    assert {"vocals", "accompaniments", "lyrics"} <= {*stems, *lyrics}
    checked = check_files_intact(files, blobs)
    track = output / "input" / "demo-chord.wav"
    assert sha256_file(track) in blobs, "the uploaded track is not stored whole"
    assert leftover_partials(output) == []

    record("chaos", "chain", {**cost, "baseline_seconds": round(baseline, 1), "files_verified": checked})
    record("chaos", "chain_time_added_seconds", round(took - baseline, 1))


def test_catalog_survives_twenty_percent_faults(
    emulator: Any, connect: Any, spy: Any, storage_dir: Path, tmp_path: Path
) -> None:
    connect(**CONNECTION)
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    tracks = {}
    for index in range(TRACKS):
        path = catalog / f"track-{index:03d}.wav"
        path.write_bytes(wav_bytes(seconds=0.2, frequency=200.0 + 37.0 * index))
        tracks[path.stem] = path
    dag = load_example("example_musicai_catalog")

    def conf(name: str, folder: Path = catalog) -> dict[str, Any]:
        return {"catalog": f"file://{folder}", "output": f"file://{tmp_path / name}"}

    one_track = tmp_path / "warm-up-catalog"
    one_track.mkdir()
    (one_track / "warm-up.wav").write_bytes(wav_bytes(seconds=0.2))
    run_under_faults(emulator, spy, dag, conf("warm-up", one_track), False)
    dag_run, took, cost = run_under_faults(emulator, spy, dag, conf("chaos"), True)
    blobs = blob_digests(storage_dir)
    jobs_left = emulator.admin.jobs()
    _, baseline, _ = run_under_faults(emulator, spy, dag, conf("calm"), False)

    states = task_states(dag_run)
    assert set(states.values()) == {"success"}, ({k: v for k, v in states.items() if v != "success"}, cost)
    assert cost["jobs_created"] == TRACKS, cost  # one job per track: no duplicate, none lost
    assert cost["ambiguous_job_creations_resolved"] >= min(3, TRACKS), cost
    assert xcom_value(dag_run, "report")["processed"] == TRACKS
    assert jobs_left == []  # every job deleted by the DAG

    files: list[Path] = []
    for stem in tracks:
        folder = tmp_path / "chaos" / stem
        names = {path.name for path in folder.iterdir()}
        assert names == {"beats.json", "chords.json", "result.json"}, (stem, names)
        files += [folder / "beats.json", folder / "chords.json"]
        values = json.loads((folder / "result.json").read_text())
        assert set(values) == {"bpm", "key"}
    checked = check_files_intact(files, blobs)
    assert all(sha256_file(path) in blobs for path in tracks.values()), "an upload is not stored whole"
    assert leftover_partials(tmp_path / "chaos") == []

    record(
        "chaos",
        "catalog",
        {**cost, "tracks": TRACKS, "baseline_seconds": round(baseline, 1), "files_verified": checked},
    )
    record("chaos", "catalog_time_added_seconds", round(took - baseline, 1))


def test_incremental_catalog_pays_once_per_changed_track_under_faults(
    emulator: Any, connect: Any, spy: Any, tmp_path: Path
) -> None:
    """An incremental catalog under 20% faults: the changed and added tracks get exactly one job
    each, the unchanged ones none; a rerun with nothing changed creates none and calls nothing."""
    from tests.helpers.airflow import load_dag_file

    connect(**CONNECTION)
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    for index in range(TRACKS):
        (catalog / f"track-{index:03d}.wav").write_bytes(
            wav_bytes(seconds=0.2, frequency=200.0 + 37.0 * index)
        )
    dags = Path(__file__).resolve().parents[1] / "airflow" / "dags" / "musicai_catalog_incremental_dags.py"
    dag = load_dag_file(dags).musicai_catalog_incremental
    conf = {"catalog": str(catalog), "destination": str(tmp_path / "out"), "state": str(tmp_path / "state")}
    _, _, cost = run_under_faults(emulator, spy, dag, conf, False)
    assert cost["jobs_created"] == TRACKS
    (catalog / "track-000.wav").write_bytes(wav_bytes(seconds=0.3, frequency=90.0))
    (catalog / "track-new.wav").write_bytes(wav_bytes(seconds=0.2, frequency=95.0))
    dag_run, _, cost = run_under_faults(emulator, spy, dag, conf, True)
    assert set(task_states(dag_run).values()) == {"success"}, cost
    summary = xcom_value(dag_run, "catalog")
    assert (summary["processed"], summary["skipped"]) == (2, TRACKS - 1), (summary, cost)
    assert cost["jobs_created"] == 2, cost  # one job per changed track: no duplicate, none lost
    assert cost["faults_injected"] > 0 and cost["credential_leaks"] == 0, cost
    again, _, rerun = run_under_faults(emulator, spy, dag, conf, True)
    assert xcom_value(again, "catalog")["skipped"] == TRACKS + 1
    assert (rerun["jobs_created"], rerun["requests"]) == (0, 0), rerun
    record("chaos", "incremental_catalog", cost)
