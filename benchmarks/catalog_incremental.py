"""Incremental catalog at scale: N tracks already processed, C of them changed, then nothing changed.

The processed-state of the first (full) run is seeded (``--seed state``, the default): the state
lines a run records, written as parts of 1,000 by :class:`CatalogState` and compacted, with each
track's fingerprint computed by the operator's own code (so every file is read once, as a first
run reads it). ``--seed run`` runs the full first run through the emulator instead (N jobs: only
for small N). Then, against the emulator, one ``MusicAICatalogOperator(incremental=True)``
(deferred, triggers run in-line as ``dag.test()`` does):

1. C tracks rewritten (new bytes): jobs created, API requests, wall time;
2. nothing changed: jobs, requests, wall time;
3. nothing changed again, under ``tracemalloc``: peak of traced Python memory.

Also timed: one bare listing of the catalog (``iter_tracks``), what run 2 cannot avoid.

    python benchmarks/catalog_incremental.py --tracks 100000 --changed 100

Prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--seed", choices=("state", "run"), default="state")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO_DIR))
    home = Path(tempfile.mkdtemp(prefix="musicai-bench-incremental-"))
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    import logging

    logging.disable(logging.INFO)
    folder = home / "catalog"
    paths = write_tracks(folder, args.tracks)
    with catalog_emulator(home) as emu:
        result: dict[str, Any] = {"tracks": args.tracks, "changed": args.changed, "seed": args.seed}
        started = time.perf_counter()
        if args.seed == "state":
            result["seed_compaction"] = seed_state(folder, home / "state")
        else:
            run(args, folder, home, "seed", emu)
        result["seed_seconds"] = round(time.perf_counter() - started, 1)
        for path in paths[:: max(1, args.tracks // max(1, args.changed))][: args.changed]:
            path.write_bytes(path.read_bytes() + b"\0\0")
        result["listing_seconds"] = time_listing(folder)
        baseline = rss_bytes()
        result["changed_run"] = run(args, folder, home, "changed", emu)
        result["unchanged_run"] = run(args, folder, home, "unchanged", emu)
        result["unchanged_run_traced"] = run(args, folder, home, "traced", emu, traced=True)
        result["rss_growth_mib"] = round(max(0, peak_rss_bytes() - baseline) / MIB, 1)
        emit(result)


def seed_state(folder: Path, state: Path) -> dict[str, Any]:
    """Write the state a full first run records; return the compaction's time and traced peak."""
    import tracemalloc

    from airflow_provider_musicai.operators._catalog import iter_tracks
    from airflow_provider_musicai.operators._fingerprint import content_identity, request_digest
    from airflow_provider_musicai.operators._state import CatalogState, now_iso

    store = CatalogState(str(state))
    request = request_digest(WORKFLOW, {"inputUrl": "{source}"}, None, None, None)
    lines: list[dict[str, Any]] = []
    for n, track in enumerate(iter_tracks(str(folder))):
        lines.append(
            {
                "source": track.name,
                **content_identity(track.source, track.info, None),
                "request": request,
                "status": "SUCCEEDED",
                "job_id": f"seeded-{n}",
                "outputs": {"vocals": f"musicai-result://seeded-{n}/vocals"},
                "run_id": "seed",
                "at": now_iso(),
            }
        )
        if len(lines) == 1000:
            store.write(lines)
            lines = []
    store.write(lines)
    started = time.perf_counter()
    tracemalloc.start()
    try:
        store.compact()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"seconds": round(time.perf_counter() - started, 1), "traced_peak_mib": round(peak / MIB, 2)}


def time_listing(folder: Path) -> float:
    from airflow_provider_musicai.operators._catalog import iter_tracks

    started = time.perf_counter()
    sum(1 for _ in iter_tracks(str(folder)))
    return round(time.perf_counter() - started, 2)


def run(
    args: argparse.Namespace, folder: Path, home: Path, name: str, emu: Any, traced: bool = False
) -> dict[str, Any]:
    import tracemalloc

    from airflow_provider_musicai.operators.catalog import MusicAICatalogOperator
    from tests.helpers.airflow import FakeTI

    allow_execute_outside_a_task()
    operator = MusicAICatalogOperator(
        task_id="catalog",
        workflow=WORKFLOW,
        sources=str(folder),
        manifest=str(home / "manifest" / name),
        state=str(home / "state"),
        incremental=True,
        max_in_flight=args.window,
        deferrable=True,
        poll_interval=0.5,
        deferral_hold=0.0,
    )
    before = emu.admin.counters()
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    inline = run_inline(operator, {"ti": FakeTI(run_id=name)})
    summary, wake_ups = inline.summary, inline.wake_ups
    wall = time.perf_counter() - started
    result: dict[str, Any] = {}
    if traced:
        result["traced_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / MIB, 2)
        tracemalloc.stop()
    after = emu.admin.counters()
    requests = {k: v - before["requests"].get(k, 0) for k, v in after["requests"].items()}
    return {
        **result,
        "wall_seconds": round(wall, 1),
        "jobs_created": after["jobs_created"] - before["jobs_created"],
        "api_requests": sum(requests.values()),
        "requests": {k: v for k, v in requests.items() if v},
        "wake_ups": wake_ups,
        "summary": {k: v for k, v in summary.items() if k != "manifest"},
    }


if __name__ == "__main__":
    main()
