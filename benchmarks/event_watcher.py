"""Event watcher (issue 21): requests per quiet poll with N finished jobs kept on the account, then
M jobs finishing: each must fire once, within 2 poll intervals.

One ``MusicAIJobEventTrigger`` (``run()``, as a triggerer runs a watcher alone) polls an emulator
that keeps ``--kept`` finished jobs (``admin.add_history``: stored finished, not processed). The
emulator's request counters (``GET /v1/job`` and ``GET /v1/job/{id}``) are read around every poll.

    python benchmarks/event_watcher.py --kept 100000 --poll 2 --quiet-polls 10 --finishing 1000

Prints one ``RESULT {json}`` line: the requests of the first polls (whole listings, as after a
triggerer restart), of each quiet poll, and of the polls while the M jobs finish; events fired per
job and their delay (event received minus ``completedAt``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from common import REPO_DIR, emit

WORKFLOW = "music-ai/transcribe-vocals"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kept", type=int, default=100_000)
    parser.add_argument("--poll", type=float, default=2.0)
    parser.add_argument("--quiet-polls", type=int, default=10)
    parser.add_argument("--finishing", type=int, default=1000)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO_DIR))
    logging.basicConfig(level=logging.WARNING)
    from airflow_provider_musicai.testing.emulator.control import EmulatorServer

    with EmulatorServer() as emu:
        os.environ["AIRFLOW_CONN_MUSICAI_DEFAULT"] = emu.connection_json()
        started = time.monotonic()
        emu.admin.add_history(args.kept)
        seeded = time.monotonic() - started
        result = asyncio.run(measure(emu, args))
        result.update(kept=args.kept, poll_interval=args.poll, seed_seconds=round(seeded, 1))
        emit(result)


def job_requests(emu: Any) -> int:
    requests = emu.admin.counters()["requests"]
    return sum(count for endpoint, count in requests.items() if endpoint.startswith("GET /v1/job"))


async def measure(emu: Any, args: argparse.Namespace) -> dict[str, Any]:
    from airflow_provider_musicai.hooks.musicai import MusicAIHook
    from airflow_provider_musicai.triggers import _job_feed
    from airflow_provider_musicai.triggers.events import MusicAIJobEventTrigger

    polls: list[dict[str, Any]] = []
    original = _job_feed.FinishedJobFeed.poll

    async def counted(feed: Any) -> Any:
        before, clock = await asyncio.to_thread(job_requests, emu), time.monotonic()
        poll = await original(feed)
        sent = await asyncio.to_thread(job_requests, emu)
        polls.append(
            {"sent": sent - before, "counted": poll.requests, "complete": poll.complete}
            | {"seconds": round(time.monotonic() - clock, 3), "found": len(poll.jobs)}
        )
        return poll

    _job_feed.FinishedJobFeed.poll = counted  # type: ignore[method-assign]
    fired: dict[str, list[float]] = {}
    delays: list[float] = []

    async def watch() -> None:
        async for event in MusicAIJobEventTrigger(poll_interval=args.poll).run():
            job_id = event.payload["job_id"]
            now = time.time()
            fired.setdefault(job_id, []).append(now)
            done = datetime.fromisoformat(event.payload["completed_at"].replace("Z", "+00:00"))
            delays.append(now - done.timestamp())

    task = asyncio.ensure_future(watch())
    try:
        await until(lambda: len(polls) >= 2 + args.quiet_polls, task)
        quiet = polls[2 : 2 + args.quiet_polls]
        # M jobs that finish over the next poll interval or two, created while the watcher polls.
        hook = MusicAIHook()
        wav = Path(tempfile.mkdtemp()) / "t.wav"
        wav.write_bytes(_tiny_wav())
        url = await asyncio.to_thread(hook.upload_file, str(wav))
        await asyncio.to_thread(emu.admin.configure, queued_seconds=0.2, processing_seconds=args.poll)
        burst_start = len(polls)
        ids = [
            await asyncio.to_thread(hook.create_job, f"burst {n}", WORKFLOW, {"inputUrl": url})
            for n in range(args.finishing)
        ]
        await until(lambda: set(ids) <= fired.keys(), task, timeout=600)
        burst = polls[burst_start:]
    finally:
        task.cancel()
        _job_feed.FinishedJobFeed.poll = original  # type: ignore[method-assign]
    sent = [p["sent"] for p in quiet]
    return {
        "first_polls": polls[:2],
        "quiet_polls": quiet,
        "quiet_requests_max": max(sent),
        "quiet_requests_median": statistics.median(sent),
        "burst_polls": burst,
        "finishing": args.finishing,
        "fired_once": sum(len(fired.get(job_id, [])) == 1 for job_id in ids),
        "fired_twice_or_more": sum(len(fired.get(job_id, [])) > 1 for job_id in ids),
        "delay_max_s": round(max(delays), 2) if delays else None,
        "delay_p99_s": round(sorted(delays)[int(len(delays) * 0.99) - 1], 2) if delays else None,
    }


async def until(condition: Any, task: asyncio.Future[Any], timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        if task.done():
            task.result()
            raise RuntimeError("the watcher stopped")
        await asyncio.sleep(0.05)


def _tiny_wav() -> bytes:
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * 4000)
    return buffer.getvalue()


if __name__ == "__main__":
    main()
