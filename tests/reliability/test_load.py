"""Load: 200 concurrent clients go through the hook against the emulator (60 s at full size, 10 s in
CI), from several processes as a deployment would: worker-like processes of 40 threads, each
thread with its own hook, creating jobs, reading them back, listing and now and then uploading;
and one triggerer-like process of 40 coroutines polling on one event loop. No call may fail, no
job may be lost or created twice; throughput and latency are recorded.

Run: ``pytest -m load`` (``MUSICAI_RELIABILITY_FULL=1`` for 60 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_musicai.hooks.musicai import MusicAIHook
from tests.helpers.airflow import REPO
from tests.helpers.audio import wav_bytes
from tests.helpers.reliability import percentiles, record, size, wait_until

pytestmark = pytest.mark.load

SECONDS = size(10.0, 60.0)
PROCESSES = {"sync": 4, "async": 1}
PER_PROCESS = 40  # 4 x 40 worker threads + 40 coroutines = 200 clients
CONNECTION = {"timeout": 60, "connect_timeout": 30, "max_retries": 5, "retry_backoff": 0.1}
STARTUP_SECONDS = 300.0  # at most, for every process to import Airflow (the clock starts after)


def test_two_hundred_concurrent_clients(emulator: Any, connect: Any, tmp_path: Path) -> None:
    emulator.admin.configure(queued_seconds=86400)  # the API under load, not the job runner
    connect(**CONNECTION)
    source = tmp_path / "small.wav"
    source.write_bytes(wav_bytes(seconds=0.05))
    setup = MusicAIHook()
    input_url = setup.upload_file(source)
    setup.close()
    emulator.admin.reset(blobs=False)  # count the load only

    go = tmp_path / "go.json"
    ready: list[Path] = []
    processes: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
    first = 0
    for mode, count in PROCESSES.items():
        for index in range(count):
            out = tmp_path / f"{mode}-{index}.json"
            ready.append(tmp_path / f"{mode}-{index}.ready")
            spec = tmp_path / f"{mode}-{index}.spec.json"
            spec.write_text(
                json.dumps(
                    {
                        "mode": mode,
                        "first": first,
                        "clients": PER_PROCESS,
                        "ready": str(ready[-1]),
                        "go": str(go),
                        "input_url": input_url,
                        "source": str(source),
                        "out": str(out),
                    }
                )
            )
            first += PER_PROCESS
            log = tmp_path / f"{mode}-{index}.log"
            command = [sys.executable, "-m", "tests.reliability.load_client", str(spec)]
            with log.open("wb") as handle:
                process = subprocess.Popen(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)
            processes.append((process, out, log))
    wait_until(
        "every client process to be ready",
        lambda: all(path.exists() for path in ready) or any(p.poll() is not None for p, _, _ in processes),
        STARTUP_SECONDS,
    )
    start_at = time.time() + 0.5
    partial = go.with_suffix(".part")
    partial.write_text(json.dumps({"start_at": start_at, "stop_at": start_at + SECONDS}))
    partial.rename(go)  # atomically: a client never reads half of it
    for process, _, _ in processes:
        process.wait(SECONDS + 180)

    results = []
    for process, out, log in processes:
        assert process.returncode == 0 and out.exists(), log.read_text()[-3000:]
        results.append(json.loads(out.read_text()))
    elapsed = SECONDS  # every client was ready before the clock started
    errors = [error for result in results for error in result["errors"]]
    assert errors == [], errors[:10]
    created = [tuple(item) for result in results for item in result["created"]]
    ids = [job_id for job_id, _, _ in created]
    assert len(ids) == len(set(ids)), "the API returned one id twice"
    counters = emulator.admin.counters()
    assert counters["jobs_created"] == len(ids), (counters["jobs_created"], len(ids))  # no duplicate
    on_service = {job["id"]: job for job in emulator.admin.jobs()}
    assert set(on_service) == set(ids), "jobs lost, or created without the client knowing"
    pairs = {(job["metadata"]["client"], job["metadata"]["sequence"]) for job in on_service.values()}
    assert len(pairs) == len(ids)
    assert ids, "the clients created no job"

    latency: dict[str, list[float]] = {}
    for result in results:
        for operation, values in result["latency"].items():
            latency.setdefault(operation, []).extend(values)
    calls = sum(len(values) for values in latency.values())
    record(
        "load",
        "figures",
        {
            "clients": first,
            "processes": sum(PROCESSES.values()),
            "cores": os.cpu_count(),
            "seconds": elapsed,
            "calls": calls,
            "calls_per_second": round(calls / elapsed, 1),
            "jobs_created": len(ids),
            "jobs_per_second": round(len(ids) / elapsed, 1),
            "errors": len(errors),
            "lost_jobs": len(set(ids) - set(on_service)),
            "duplicate_jobs": counters["jobs_created"] - len(ids),
            "client_retries": sum(result["retries"] for result in results),
            "emulator_requests": counters["requests_total"],
            "emulator_statuses": counters["statuses"],
            "max_open_connections": {
                listener: counters["connections"][listener]["max_open"] for listener in ("api", "storage")
            },
            "latency": {op: {"calls": len(v), **percentiles(v)} for op, v in sorted(latency.items())},
        },
    )
