"""Catalog run at scale: one MusicAICatalogOperator over N tracks against the emulator.

Measures wall time, API requests per track (the emulator's counters), peak RSS of the process
that runs both the worker side (execute / execute_complete) and the trigger side (the catalog
trigger through the shared poller, run in-line as ``dag.test()`` does), and the Airflow objects
the run needs: task instances (1), trigger rows (one at a time, one per wake-up) and XCom rows
(1, the summary), whatever N.

    python benchmarks/catalog.py --tracks 10000 [--window 200] [--concurrent 100] [--hold 0]

Prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from catalog_common import WORKFLOW, allow_execute_outside_a_task, catalog_emulator, run_inline, write_tracks
from common import MIB, REPO_DIR, emit, peak_rss_bytes, rss_bytes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tracks", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=100, help="the plan's concurrent-job limit")
    parser.add_argument("--uploads", type=int, default=4)
    parser.add_argument(
        "--hold",
        type=float,
        default=0.0,
        help="the operator's deferral_hold: 0 here, no scheduler to race in-line (5 s by default in Airflow)",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(REPO_DIR))
    home = Path(tempfile.mkdtemp(prefix="musicai-bench-catalog-"))
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    folder = home / "catalog"
    write_tracks(folder, args.tracks)
    with catalog_emulator(home, args.concurrent) as emu:
        emit(run(args, folder, home / "manifest", emu))


def run(args: argparse.Namespace, folder: Path, manifest: Path, emu: Any) -> dict[str, Any]:
    import logging

    logging.disable(logging.INFO)  # a line per request would cost more CPU than the run itself

    from airflow_provider_musicai.operators.catalog import MusicAICatalogOperator
    from tests.helpers.airflow import FakeTI

    allow_execute_outside_a_task()
    operator = MusicAICatalogOperator(
        task_id="catalog",
        workflow=WORKFLOW,
        sources=str(folder),
        manifest=str(manifest),
        max_in_flight=args.window,
        upload_concurrency=args.uploads,
        deferrable=True,
        poll_interval=0.5,
        deferral_hold=args.hold,
    )
    baseline = rss_bytes()
    started = time.perf_counter()
    inline = run_inline(operator, {"ti": FakeTI()})
    summary, wake_ups = inline.summary, inline.wake_ups
    wall = time.perf_counter() - started
    peak_rss = peak_rss_bytes()
    resume_index = measure_resume_index(manifest)
    counters = emu.admin.counters()
    requests = counters["requests"]
    return {
        "tracks": args.tracks,
        "window": args.window,
        "hold": args.hold,
        "wall_seconds": round(wall, 1),
        "tracks_per_second": round(args.tracks / wall, 1),
        "jobs_created": counters["jobs_created"],
        "requests": dict(requests),
        "requests_per_track": round(sum(requests.values()) / args.tracks, 3),
        "listings_per_track": round(requests.get("GET /v1/job", 0) / args.tracks, 4),
        "summary": summary,
        "wake_ups": wake_ups,
        "largest_trigger_kwargs_bytes": inline.largest_trigger_kwargs_bytes,
        "xcom_bytes": len(json.dumps(summary)),
        "airflow_rows": {
            "task_instances": 1,
            "xcom": 1,
            "trigger_rows_at_once": 1,
            "trigger_rows_total": wake_ups,
        },
        "peak_rss_mib": round(peak_rss / MIB, 1),
        "rss_growth_mib": round(max(0, peak_rss - baseline) / MIB, 1),
        "resume_index": resume_index,
    }


def measure_resume_index(manifest: Path) -> dict[str, float]:
    """What a resumed try holds of this run's manifest (traced Python memory, after the run)."""
    import tracemalloc

    from airflow_provider_musicai.operators._catalog import FinishedTracks, Manifest

    tracemalloc.start()
    try:
        finished = FinishedTracks(Manifest(str(manifest)).read())
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"tracks": len(finished), "held_kib": round(held / 1024, 1), "peak_kib": round(peak / 1024, 1)}


if __name__ == "__main__":
    main()
