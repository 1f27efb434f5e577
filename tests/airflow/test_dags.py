"""Whole DAG runs through Airflow (``dag.test()``: tasks, deferral with inline triggers, XCom,
templating, mapping, retries) against the emulator: every example DAG, and the retry paths."""

from __future__ import annotations

import wave
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_musicai.jobs import IDEMPOTENCY_METADATA_KEY
from tests.helpers.airflow import (
    completed_after_a_reschedule,
    load_example,
    load_test_dag,
    run_dag,
    stored_rows_text,
    task_states,
    xcom_value,
)

pytestmark = pytest.mark.usefixtures("airflow_db")

STEMS = "music-ai/stems-vocals-accompaniment"


def no_retry_delay(dag: Any) -> Any:
    """Keep the examples' retries but not their delays (dag.test would sleep through them)."""
    for task in dag.tasks:
        task.retry_delay = timedelta(0)
    return dag


@pytest.mark.compat
def test_example_chain(
    musicai: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    dag_run = run_dag(load_example("example_musicai_chain"), {"output_dir": str(tmp_path)})
    # What reached the terminal and every log record: on Airflow 2 a console handler made by an
    # earlier test of the same (xdist worker) process writes where capfd does not look.
    logs = "".join(capfd.readouterr()) + caplog.text
    states = task_states(dag_run)
    assert set(states.values()) == {"success"}, states
    assert len(states) == 8

    stems = xcom_value(dag_run, "separate_stems")
    lyrics = xcom_value(dag_run, "transcribe_vocals")
    assert stems["status"] == lyrics["status"] == "SUCCEEDED"
    assert xcom_value(dag_run, "separate_stems", key="job_id") == stems["id"]
    # The second job ran on the first job's vocals stem (passed as a result reference, resolved by
    # the hook when the job was created).
    assert stems["result"]["vocals"] == f"musicai-result://{stems['id']}/vocals"
    assert urlsplit(lyrics["workflowParams"]["inputUrl"]).path.endswith("/vocals.wav")

    files = xcom_value(dag_run, "download_stems")
    for name in ("vocals", "accompaniments"):
        with wave.open(files[name]) as stem:
            assert stem.getnchannels() >= 1 and stem.getnframes() > 0
    assert Path(xcom_value(dag_run, "download_lyrics")["lyrics"]).stat().st_size > 0
    assert (tmp_path / "summary.json").exists()

    assert sorted(xcom_value(dag_run, "delete_jobs")) == sorted([stems["id"], lyrics["id"]])
    assert musicai.admin.jobs() == []

    # Signed URLs and the key appear nowhere: not in XCom, rendered fields, trigger rows, task logs.
    assert "Created Music AI job" in logs and "X-Expires" not in logs and "X-Signature" not in logs
    stored = stored_rows_text()
    assert stems["id"] in stored and "musicai-sealed:" in stored
    for secret in ("X-Signature", "X-Expires", musicai.api_key):
        assert secret not in stored and secret not in logs, secret
    counters = musicai.admin.counters()
    assert counters["jobs_created"] == 2 and counters["credential_leaks"] == 0


def test_example_catalog(musicai: Any, tmp_path: Path) -> None:
    conf = {"catalog": f"file://{tmp_path}/catalog", "output": f"file://{tmp_path}/results"}
    dag_run = run_dag(load_example("example_musicai_catalog"), conf)
    states = task_states(dag_run)
    assert set(states.values()) == {"success"}, states
    assert xcom_value(dag_run, "report")["processed"] == 3
    for stem in ("a4", "c5", "e5"):
        names = {path.name for path in (tmp_path / "results" / stem).iterdir()}
        assert {"result.json"} < names and len(names) == 3, names  # chords + beats + values
    assert musicai.admin.jobs() == [] and musicai.admin.counters()["jobs_created"] == 3


def test_example_catalog_one_failing_track_does_not_stop_the_others(musicai: Any, tmp_path: Path) -> None:
    conf = {
        "catalog": f"file://{tmp_path}/catalog",
        "output": f"file://{tmp_path}/results",
        "include_broken_track": True,
    }
    dag_run = run_dag(no_retry_delay(load_example("example_musicai_catalog")), conf)
    states = task_states(dag_run)
    tracks = xcom_value(dag_run, "list_tracks")
    broken = next(index for index, track in enumerate(tracks) if track.endswith("broken.wav"))
    assert states[f"process_track.analyze[{broken}]"] == "failed"
    assert states[f"process_track.download[{broken}]"] == "upstream_failed"
    others = [index for index in range(len(tracks)) if index != broken]
    assert all(states[f"process_track.download[{index}]"] == "success" for index in others), states
    assert all(states[f"process_track.delete_job[{index}]"] == "success" for index in range(len(tracks)))
    assert states["report"] == "failed" and str(dag_run.state).endswith("failed")
    # The broken track FAILED with BAD_INPUT: not retried into another paid job; all cleaned up.
    assert musicai.admin.jobs() == []
    assert musicai.admin.counters()["jobs_created"] == len(others) + 1


@pytest.mark.compat
def test_example_sensor(musicai: Any, hook: Any, input_url: Any) -> None:
    job_id = hook.create_job("made elsewhere", STEMS, {"inputUrl": input_url()})
    dag_run = run_dag(load_example("example_musicai_sensor"), {"job_id": job_id})
    assert set(task_states(dag_run).values()) == {"success"}
    assert xcom_value(dag_run, "wait_for_job")["id"] == job_id
    assert xcom_value(dag_run, "use_result") == ["accompaniments", "vocals"]
    assert [job["id"] for job in musicai.admin.jobs()] == [job_id]  # the sensor never deletes


def test_partial_expand_and_mapped_output_into_delete(musicai: Any, input_url: Any) -> None:
    dag_run = run_dag(load_test_dag("mapping"), {"urls": [input_url(), input_url()]})
    states = task_states(dag_run)
    assert states == {"inputs": "success", "jobs[0]": "success", "jobs[1]": "success", "cleanup": "success"}
    docs = [xcom_value(dag_run, "jobs", map_index=index) for index in (0, 1)]
    assert [doc["name"] for doc in docs] == ["mapped 0", "mapped 1"]
    assert len({doc["metadata"][IDEMPOTENCY_METADATA_KEY] for doc in docs}) == 2
    assert sorted(xcom_value(dag_run, "cleanup")) == sorted(doc["id"] for doc in docs)
    assert musicai.admin.jobs() == []


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_a_retry_after_a_timeout_reattaches_to_the_same_job(
    musicai: Any, input_url: Any, deferrable: bool
) -> None:
    """Try 1 times out after 1 s (the job keeps running, done after 2 s); the retries reattach."""
    musicai.admin.configure(queued_seconds=1.0, processing_seconds=1.0)
    dag = load_test_dag("reattach_deferred" if deferrable else "reattach_worker")
    dag_run = run_dag(dag, {"url": input_url()})
    assert task_states(dag_run) == {"job": "success"}
    assert musicai.admin.counters()["jobs_created"] == 1
    (job,) = musicai.admin.jobs()
    assert xcom_value(dag_run, "job")["id"] == job["id"]


@pytest.mark.compat
def test_sensor_in_reschedule_mode(musicai: Any, hook: Any, input_url: Any) -> None:
    musicai.admin.configure(manual_clock=True)
    job_id = hook.create_job("resched", STEMS, {"inputUrl": input_url()})
    with completed_after_a_reschedule(musicai, [job_id]):
        dag_run = run_dag(load_test_dag("reschedule"), {"job_id": job_id})
    assert task_states(dag_run) == {"wait": "success"}
    assert xcom_value(dag_run, "wait")["id"] == job_id
