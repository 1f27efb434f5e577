"""The benchmark harness on a tiny load: it runs and its figures are well formed.

No timing is asserted here (timings belong in benchmarks/RESULTS.md); only counts that are exact
by construction: one event per job, requests that a listing must make, all events delivered.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import common  # benchmarks/ is on sys.path through pytest's ``pythonpath`` setting (pyproject.toml)
import listing
import pytest
import report
import waiting
from run import _input_url


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    from airflow_provider_musicai.testing import EmulatorServer

    with EmulatorServer() as server:
        yield server


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return {"AIRFLOW_HOME": os.environ["AIRFLOW_HOME"], "PYTHONWARNINGS": "ignore"}


@pytest.mark.parametrize("mode", waiting.MODES)
def test_every_way_of_waiting_delivers_one_event_per_job(emu: Any, env: dict[str, str], mode: str) -> None:
    if mode != "sdk-threads":
        pytest.importorskip(
            "airflow.executors.workloads", reason="the harness drives Airflow 3's TriggerRunner"
        )
    row = waiting.run_wait(emu, mode, 6, 0.5, env, _input_url(emu), lambda _: None)
    assert row["jobs"] == 6
    assert row["events"] == 6 and row["jobs_with_one_event"] == 6
    assert row["events_missing_at_cutoff"] == 0 and row["failed_triggers"] == 0
    assert row["delays"] == 6 and row["delay_p99"] >= row["delay_p50"]
    assert row["requests_total"] > 0 and row["connections_opened"] >= 1


def test_listing_counts_every_page(emu: Any, env: dict[str, str]) -> None:
    rows = listing.run_listing(emu, 150, 1, env, _input_url(emu), lambda _: None)
    for mode in ("stream", "materialize"):
        (measured,) = rows[mode]
        assert measured["jobs"] == 150
        assert measured["requests"] == 2  # a full page of 100, then one of 50


def test_report_renders_every_section(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    wait_row = {
        "mode": "trigger",
        "jobs": 10,
        "jobs_with_one_event": 10,
        "events_missing_at_cutoff": 0,
        "requests_steady_cycle": 1,
        "requests_max_window": 3,
        "requests_total": 6,
        "connections_opened": 1,
        "rss_growth_mib": 1.0,
        "delay_p50": 0.5,
        "delay_p99": 0.9,
        "delay_max": 0.9,
        "cpu_seconds": 0.1,
        "emulator": {"cpu_mean": 0.01, "cpu_max": 0.02},
        "poller": [],
    }
    results = {
        "settings": {"quick": True, "runs": 1, "poll_interval": 2.0, "wait_jobs": 10},
        "machine": common.machine(),
        "versions": {"airflow-provider-musicai": "test"},
        "started": "now",
        "wait": [wait_row, {**wait_row, "mode": "per-job", "requests_steady_cycle": 10}],
        "sweep": [{**wait_row, "jobs": 100}],
    }
    report.write(results, tmp_path)
    text = (tmp_path / "RESULTS.md").read_text()
    assert "## Headline" in text and "MusicAIJobTrigger" in text and "**met**" in text
    assert (tmp_path / "requests_and_delay.png").stat().st_size > 0
    # The rows measured on their own (benchmarks/standalone.md) survive a run.py rewrite, in order.
    table = text.split("## Headline")[1].split("\n\n")[1].splitlines()[2:]
    headline = [line.split("|")[1].strip() for line in table]
    assert headline[:2] == ["3", "3b"] and "6" in headline
    assert "## 6. Event watcher" in text


def test_incremental_catalog_benchmark_pays_only_for_changed_tracks(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    script = Path(common.__file__).resolve().parent / "catalog_incremental.py"
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, str(script), "--tracks", "40", "--changed", "4"],
        cwd=script.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    result = json.loads(line[len("RESULT ") :])
    assert result["changed_run"]["jobs_created"] == 4 and result["changed_run"]["summary"]["skipped"] == 36
    assert (result["unchanged_run"]["jobs_created"], result["unchanged_run"]["api_requests"]) == (0, 0)
