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
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import MIB, REPO_DIR, emit, peak_rss_bytes, rss_bytes

WORKFLOW = "music-ai/stems-vocals-accompaniment"


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
    from airflow_provider_musicai.testing.emulator.control import EmulatorServer
    from tests.helpers.audio import wav_bytes

    folder = home / "catalog"
    data = wav_bytes(0.05, rate=8000)
    paths = []
    for n in range(args.tracks):
        path = folder / f"album{n % 100:02d}" / f"track{n:06d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    config = {"max_concurrent_jobs": 100, "queued_seconds": 0.0, "processing_seconds": 0.0}
    with EmulatorServer(config=config, storage_dir=home / "blobs") as emu:
        os.environ["AIRFLOW_CONN_MUSICAI_DEFAULT"] = json.dumps(
            {**emu.connection_dict(), "extra": json.dumps({"max_retries": 5, "retry_backoff": 0.1})}
        )
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

    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_musicai.operators.catalog import MusicAICatalogOperator

    try:
        from airflow.sdk.bases.operator import ExecutorSafeguard
    except ImportError:  # Airflow 2
        from airflow.models.baseoperator import ExecutorSafeguard  # type: ignore[no-redef]
    ExecutorSafeguard.test_mode = True
    from tests.helpers.airflow import FakeTI

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
    context: dict[str, Any] = {"ti": FakeTI(run_id=name)}

    async def fire(trigger: Any) -> Any:
        events = [event.payload async for event in trigger.run()]
        return events[0]

    before = emu.admin.counters()
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    step = lambda: operator.execute(context)  # noqa: E731
    wake_ups = 0
    while True:
        try:
            summary = step()
            break
        except TaskDeferred as deferred:
            wake_ups += 1
            event = asyncio.run(fire(deferred.trigger))
            step = lambda e=event: operator.execute_complete(context, e)  # noqa: E731
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
