"""Row 5: ``hook.list_jobs()`` over 10,000 jobs: requests sent and memory while iterating.

A worker process iterates the listing either keeping nothing (``stream``: what a lazy iterator
allows) or keeping every document (``materialize``: what a list-returning client costs), with
``tracemalloc`` tracing Python allocations. The emulator's counters give the number of requests.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from common import MIB, emit, peak_rss_bytes, rss_bytes, run_worker, spread

WORKFLOW = "music-ai/transcribe-vocals"


def worker(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="listing.py worker")
    parser.add_argument("mode", choices=["stream", "materialize"])
    args = parser.parse_args(argv)
    from airflow_provider_musicai.hooks.musicai import MusicAIHook

    hook = MusicAIHook()
    hook.config  # noqa: B018 (read the connection before measuring)
    baseline = rss_bytes()
    tracemalloc.start()
    started = time.perf_counter()
    count = 0
    kept: list[dict[str, Any]] = []
    peak_after_first_page = 0
    for job in hook.list_jobs():
        count += 1
        if args.mode == "materialize":
            kept.append(job)
        if count == 100:
            peak_after_first_page = tracemalloc.get_traced_memory()[1]
    wall = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    emit(
        {
            "jobs": count,
            "wall": wall,
            "tracemalloc_peak_mib": peak / MIB,
            "tracemalloc_peak_first_page_mib": peak_after_first_page / MIB,
            "rss_growth_mib": max(0, peak_rss_bytes() - baseline) / MIB,
        }
    )


def create_jobs(emu: Any, n: int, input_url: str) -> None:
    """``n`` jobs that stay QUEUED for an hour (so the emulator does no work for them)."""
    import requests

    emu.admin.configure(queued_seconds=3600, processing_seconds=1)
    sessions = [requests.Session() for _ in range(8)]

    def post(index: int) -> None:
        answer = sessions[index % 8].post(
            emu.api_url + "/job",
            headers=emu.headers(),
            json={"name": f"listed {index}", "workflow": WORKFLOW, "params": {"inputUrl": input_url}},
            timeout=60,
        )
        answer.raise_for_status()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, range(n)))


def run_listing(
    emu: Any, n: int, runs: int, env: dict[str, str], input_url: str, log: Callable[[str], None]
) -> dict[str, Any]:
    emu.admin.reset(blobs=False)
    started = time.monotonic()
    create_jobs(emu, n, input_url)
    log(f"  created {n} jobs in {time.monotonic() - started:.1f}s")
    worker_env = {**env, "AIRFLOW_CONN_MUSICAI_DEFAULT": emu.connection_json()}
    rows: dict[str, list[dict[str, Any]]] = {"stream": [], "materialize": []}
    for _ in range(runs):
        for mode in rows:
            before = emu.admin.counters()["requests"].get("GET /v1/job", 0)
            measured = run_worker("listing.py", ["worker", mode], env=worker_env)
            measured["requests"] = emu.admin.counters()["requests"].get("GET /v1/job", 0) - before
            rows[mode].append(measured)
    for mode, measured in rows.items():
        log(
            f"  list_jobs ({mode}): {measured[0]['jobs']} jobs, {measured[0]['requests']} requests, "
            f"tracemalloc peak {spread(m['tracemalloc_peak_mib'] for m in measured).fmt(1)} MiB"
        )
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2:])
    else:
        sys.exit("usage: listing.py worker ... (run benchmarks/run.py instead)")
