"""A whole catalog in one task at CI size (2,000 tracks; 100,000 with MUSICAI_RELIABILITY_FULL=1),
deferred, under a plan limit of concurrent jobs, with requests per track counted by the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_musicai.operators.catalog import MusicAICatalogOperator
from tests.catalog.test_catalog_operator import STEMS, manifest_lines, run_deferred
from tests.helpers.reliability import record, size

TRACKS = size(2_000, 100_000)
WINDOW = 200


@pytest.mark.slow
@pytest.mark.musicai_config(max_concurrent_jobs=100, queued_seconds=0.0, processing_seconds=0.0)
def test_a_catalog_in_one_task_costs_few_requests_per_track(
    musicai: Any, make_catalog: Any, make_context: Any, tmp_path: Path
) -> None:
    folder = make_catalog(TRACKS)
    musicai.admin.fail_jobs(5, code="BAD_INPUT")
    operator = MusicAICatalogOperator(
        task_id="catalog",
        workflow=STEMS,
        sources=str(folder),
        manifest=str(tmp_path / "manifest"),
        max_in_flight=WINDOW,
        upload_concurrency=4,
        max_failed_fraction=0.01,
        deferrable=True,
        poll_interval=0.2,
        deferral_hold=0.0,  # run_deferred has no scheduler to race: no hold (test_catalog_trigger)
    )
    summary, triggers = run_deferred(operator, make_context())
    counters = musicai.admin.counters()
    assert (summary["total"], summary["succeeded"], summary["failed"]) == (TRACKS, TRACKS - 5, 5)
    assert counters["jobs_created"] == TRACKS  # exactly one job per track
    assert len({line["source"] for line in manifest_lines(summary)}) == TRACKS
    assert max(len(kwargs["job_ids"]) for _, kwargs in triggers) <= WINDOW
    requests = counters["requests"]
    per_track = sum(requests.values()) / TRACKS
    listings = requests.get("GET /v1/job", 0)
    record("catalog", "tracks", TRACKS)
    record("catalog", "requests_per_track", round(per_track, 3))
    record("catalog", "requests", dict(requests))
    record("catalog", "wake_ups", len(triggers))
    # 2 for the upload, 1 to create, 1 final read; listings are one per 100 running jobs per cycle.
    assert per_track - listings / TRACKS <= 4.05, requests
