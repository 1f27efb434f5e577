"""MusicAIJobEventTrigger against listings it must not trust: a far-future ``completedAt`` (the
watermark stays put, later jobs still fire once) and filters ignored (each job's own fields decide)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.airflow.test_event_trigger import MemoryStore
from tests.helpers.airflow import airflow_major
from tests.helpers.hooks import arun, set_connection
from tests.helpers.hostile import HostileServer, JobListingAPI
from tests.helpers.reliability import wait_until_async

pytestmark = pytest.mark.skipif(
    airflow_major() < 3, reason="asset watchers (BaseEventTrigger) need Airflow 3"
)

STEMS = "music-ai/stems-vocals-accompaniment"
FAR_FUTURE = "2099-01-01T00:00:00.000Z"
CONN = "musicai_hostile"
WATERMARK = "musicai_job_event_watermark"


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def finished(api: JobListingAPI, job_id: str, completed_at: str, **fields: Any) -> None:
    fields = {"status": "SUCCEEDED", "workflow": STEMS, "batchName": None, **fields}
    api.put(job_id, completedAt=completed_at, **fields)


async def watching(
    api: JobListingAPI, watcher: Any, scenario: Callable[[list[str]], Awaitable[None]], quiet_polls: int = 3
) -> list[str]:
    """Run ``watcher`` while ``scenario(fired)`` acts, then ``quiet_polls`` more listings; the ids fired."""
    fired: list[str] = []

    async def consume() -> None:
        async for event in watcher.run():
            fired.append(event.payload["job_id"])

    task = asyncio.ensure_future(consume())
    try:
        await wait_until_async("the watcher's first listing", lambda: api.listings >= 1 or task.done())
        await scenario(fired)
        after = api.listings
        await wait_until_async("more listings", lambda: api.listings >= after + quiet_polls or task.done())
        if task.done():
            task.result()  # the watcher's own error, if it ended
    finally:
        task.cancel()
    return fired


def test_a_far_future_completed_at_does_not_freeze_the_watcher(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_provider_musicai.triggers.events import MusicAIJobEventTrigger

    api = JobListingAPI(honour_status=True)
    store = MemoryStore()

    async def scenario(fired: list[str]) -> None:
        finished(api, "job-future", FAR_FUTURE)
        await wait_until_async("the far-future job fired", lambda: fired == ["job-future"], timeout=30)
        finished(api, "job-later", now_stamp())
        await wait_until_async("the later job fired", lambda: len(fired) >= 2, timeout=30)

    def watcher() -> MusicAIJobEventTrigger:
        made = MusicAIJobEventTrigger(poll_interval=0.02, musicai_conn_id=CONN)
        made.asset_state_store = store
        return made

    async def both() -> tuple[list[str], list[str]]:
        first = await watching(api, watcher(), scenario)
        # A restarted watcher (same store) fires neither again: the far-future id is remembered.
        again = await watching(api, watcher(), lambda fired: asyncio.sleep(0))
        return first, again

    with HostileServer(api) as server:
        set_connection(monkeypatch, CONN, server)
        first, again = arun(both())
    assert first == ["job-future", "job-later"]
    assert again == []
    mark = store.values[WATERMARK]
    assert mark["completed_at"] != FAR_FUTURE and mark["ids"] == ["job-later"]
    assert mark["ahead"] == {"job-future": FAR_FUTURE}
    # One warning naming the job and its stamp, in the output (structlog's trigger logger) or in
    # the log records (stdlib logging), whichever the logger wrote to.
    warned = f"job job-future says it completed at {FAR_FUTURE}, ahead of this machine's clock"
    assert max("".join(capfd.readouterr()).count(warned), caplog.text.count(warned)) == 1


def test_a_watermark_stored_in_the_far_future_is_moved_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A watermark a server's stamp moved to 2099 before the check existed: back to now, its ids
    kept so they do not fire again, and jobs finishing from then on fire."""
    from airflow_provider_musicai.triggers.events import MusicAIJobEventTrigger

    api = JobListingAPI(honour_status=True)
    finished(api, "job-future", FAR_FUTURE)
    store = MemoryStore()
    store.values[WATERMARK] = {"completed_at": FAR_FUTURE, "ids": ["job-future"]}

    async def scenario(fired: list[str]) -> None:
        finished(api, "job-later", now_stamp())
        await wait_until_async("the later job fired", lambda: len(fired) >= 1, timeout=30)

    watcher = MusicAIJobEventTrigger(poll_interval=0.02, musicai_conn_id=CONN)
    watcher.asset_state_store = store
    with HostileServer(api) as server:
        set_connection(monkeypatch, CONN, server)
        fired = arun(watching(api, watcher, scenario))
    assert fired == ["job-later"]
    assert store.values[WATERMARK]["completed_at"] != FAR_FUTURE


def test_a_listing_ignoring_every_filter_fires_only_matching_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_musicai.triggers.events import MusicAIJobEventTrigger

    api = JobListingAPI(honour_status=False)  # every job, whatever status was asked
    watcher = MusicAIJobEventTrigger(
        workflow=STEMS, batch_name="nightly", poll_interval=0.02, musicai_conn_id=CONN
    )

    async def scenario(fired: list[str]) -> None:
        stamp = now_stamp()
        finished(api, "other-workflow", stamp, batchName="nightly", workflow="music-ai/isolate-drums")
        finished(api, "other-batch", stamp, batchName="weekly")
        finished(api, "no-batch", stamp)
        finished(api, "failed", stamp, batchName="nightly", status="FAILED")
        finished(api, "running", stamp, batchName="nightly", status="STARTED")
        finished(api, "match", stamp, batchName="nightly")
        await wait_until_async("the matching job fired", lambda: "match" in fired, timeout=30)

    with HostileServer(api) as server:
        set_connection(monkeypatch, CONN, server)
        fired = arun(watching(api, watcher, scenario))
    assert fired == ["match"]
