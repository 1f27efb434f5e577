"""One process of load clients for ``test_load.py`` (run as a script, not collected by pytest).

``python -m tests.reliability.load_client <spec.json>`` (from the repository root): spec =
{"mode": "sync" | "async", "first": int, "clients": int, "ready": path, "go": path, "input_url": str,
"source": path, "out": path}. Once its imports are done the process creates ``ready`` and waits for
``go`` ({"start_at": epoch, "stop_at": epoch}), so a slow start never eats into the measured window.
Sync clients are worker-like threads, each with its own hook: create a job, read its status and
document back, list a page, now and then upload a file. Async clients are triggerer-like coroutines
on one event loop, polling statuses of the jobs they list. Writes {"created", "latency", "errors",
"retries"}.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
STEMS = "music-ai/stems-vocals-accompaniment"


class Tally:
    """Latencies per operation, errors, the jobs created (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: defaultdict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.created: list[tuple[str, int, int]] = []

    def timed(self, operation: str, call: Callable[[], T]) -> T:
        started = time.perf_counter()
        result = call()
        with self.lock:
            self.latency[operation].append(time.perf_counter() - started)
        return result

    def error(self, where: str, exc: BaseException) -> None:
        with self.lock:
            self.errors.append(f"{where}: {type(exc).__name__}: {exc}")


def worker(client: int, spec: dict[str, Any], tally: Tally) -> None:
    from airflow_provider_musicai.hooks.musicai import MusicAIHook

    hook = MusicAIHook()
    rng = random.Random(client)
    source = Path(spec["source"])
    time.sleep(max(0.0, spec["start_at"] - time.time()))
    try:
        for sequence in itertools.count():
            if time.time() >= spec["stop_at"]:
                return
            metadata = {"client": client, "sequence": sequence}
            params = {"inputUrl": spec["input_url"]}
            create = partial(hook.create_job, f"load {client}/{sequence}", STEMS, params, metadata)
            job_id = tally.timed("create_job", create)
            with tally.lock:
                tally.created.append((job_id, client, sequence))
            status = tally.timed("get_job_status", partial(hook.get_job_status, job_id))
            if status != "QUEUED":
                raise AssertionError(f"job {job_id} is {status}, expected QUEUED")
            job = tally.timed("get_job", partial(hook.get_job, job_id))
            if job["id"] != job_id or {k: job["metadata"].get(k) for k in metadata} != metadata:
                raise AssertionError(f"job {job_id} came back as {job}")
            if rng.random() < 0.2:
                listing = partial(lambda: list(itertools.islice(hook.list_jobs(page_size=20), 20)))
                tally.timed("list_jobs", listing)
            if rng.random() < 0.05:
                tally.timed("upload_file", partial(hook.upload_file, source))
    except Exception as exc:
        tally.error(f"client {client}", exc)
    finally:
        hook.close()


async def pollers(spec: dict[str, Any], tally: Tally) -> None:
    from airflow_provider_musicai.hooks._transport import close_shared_async_clients
    from airflow_provider_musicai.hooks.musicai import MusicAIHook

    await asyncio.sleep(max(0.0, spec["start_at"] - time.time()))

    async def poll(client: int) -> None:
        hook = MusicAIHook()
        rng = random.Random(client)
        known: list[str] = []
        try:
            for rounds in itertools.count():
                if time.time() >= spec["stop_at"]:
                    return
                if rounds % 20 == 0:
                    started = time.perf_counter()
                    known = []
                    async for job in hook.alist_jobs(status="QUEUED", page_size=50):
                        known.append(job["id"])
                        if len(known) == 50:  # one page is enough
                            break
                    tally.latency["alist_jobs"].append(time.perf_counter() - started)
                    if not known:
                        await asyncio.sleep(0.1)
                        continue
                started = time.perf_counter()
                status = await hook.aget_job_status(rng.choice(known))
                tally.latency["aget_job_status"].append(time.perf_counter() - started)
                if status != "QUEUED":
                    raise AssertionError(f"status {status}, expected QUEUED")
                await asyncio.sleep(rng.uniform(0, 0.05))
        except Exception as exc:
            tally.error(f"poller {client}", exc)

    await asyncio.gather(*(poll(spec["first"] + client) for client in range(spec["clients"])))
    await close_shared_async_clients()


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    from tests.helpers.reliability import counting_retries

    logging.basicConfig(level=logging.WARNING)
    import airflow_provider_musicai.hooks.musicai  # noqa: F401  (imports done before the clock)

    Path(spec["ready"]).touch()
    go, given_up_at = Path(spec["go"]), time.monotonic() + 600
    while not go.exists():
        if time.monotonic() > given_up_at:
            raise SystemExit("no go from the test in 600 s")
        time.sleep(0.05)
    spec.update(json.loads(go.read_text()))
    tally = Tally()
    with counting_retries() as retries:
        if spec["mode"] == "async":
            asyncio.run(pollers(spec, tally))
        else:
            threads = [
                threading.Thread(target=worker, args=(spec["first"] + client, spec, tally))
                for client in range(spec["clients"])
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    result = {
        "created": tally.created,
        "latency": dict(tally.latency),
        "errors": tally.errors,
        "retries": retries.total,
    }
    Path(spec["out"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
