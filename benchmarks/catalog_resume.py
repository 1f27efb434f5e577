"""What a resumed catalog try holds of the manifest: a dict of names and statuses vs FinishedTracks.

Writes a manifest of N records in 50-record parts (a window's worth, as a run writes them), then
reads it both ways under ``tracemalloc``: the dict the operator built before (``{source: status}``)
and :class:`FinishedTracks` (sorted 64-bit keys).

    python benchmarks/catalog_resume.py --tracks 100000

Prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from common import MIB, REPO_DIR, emit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tracks", type=int, default=100_000)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO_DIR))
    from airflow_provider_musicai.operators._catalog import FinishedTracks, Manifest

    manifest = Manifest(tempfile.mkdtemp(prefix="musicai-bench-resume-"))
    batch: list[dict[str, Any]] = []
    for n in range(args.tracks):
        name = f"album{n % 100:02d}/track{n:06d}"
        outputs = {stem: f"/out/{name}/{stem}.wav" for stem in ("vocals", "accompaniments")}
        batch.append(
            {"source": f"{name}.wav", "job_id": f"{n:08d}-0000-4000-8000-000000000000", "status": "SUCCEEDED"}
            | {"outputs": outputs, "error": None}
        )
        if len(batch) == 50:
            manifest.write(batch)
            batch = []
    manifest.write(batch)

    def as_dict() -> object:
        return {str(record.get("source")): record.get("status") for record in manifest.read()}

    def as_keys() -> object:
        return FinishedTracks(manifest.read())

    emit({"tracks": args.tracks, "dict": measure(as_dict), "finished_tracks": measure(as_keys)})


def measure(build: Callable[[], object]) -> dict[str, float]:
    """MiB held by what ``build`` returns, the peak while building, and seconds taken."""
    tracemalloc.start()
    try:
        started = time.perf_counter()
        kept = build()
        seconds = time.perf_counter() - started
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del kept
    return {"held_mib": round(held / MIB, 2), "peak_mib": round(peak / MIB, 2), "seconds": round(seconds, 1)}


if __name__ == "__main__":
    main()
