"""The event watchers' feed of finished jobs: a quiet poll costs a few requests whatever the account
keeps, and no job is lost or fired twice against listings that are not newest first, pages that
shift while read, jobs that vanish before they are confirmed, and watchers joining a shared stream."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.airflow.test_event_trigger_hostile import CONN, STEMS, watching
from tests.helpers.airflow import airflow_major
from tests.helpers.hooks import arun, set_connection
from tests.helpers.hostile import HostileServer, JobListingAPI, Request

pytestmark = pytest.mark.skipif(
    airflow_major() < 3, reason="asset watchers (BaseEventTrigger) need Airflow 3"
)

LOG = logging.getLogger("tests.event_feed")
START = datetime(2026, 1, 1, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def put_job(api: JobListingAPI, job_id: str, created: datetime, status: str = "SUCCEEDED") -> None:
    """A job created at ``created``; finished a second later unless ``status`` is active."""
    done = stamp(created + timedelta(seconds=1)) if status in ("SUCCEEDED", "FAILED") else None
    api.put(job_id, status=status, workflow=STEMS, batchName=None, createdAt=stamp(created), completedAt=done)


def history(api: JobListingAPI, count: int) -> None:
    for index in range(count):
        put_job(api, f"old-{index:05d}", START + timedelta(seconds=index))


def new_ids(poll: Any) -> list[str]:
    """The ids a poll found, but for the kept history (the newest page always lists some)."""
    return [job["id"] for job in poll.jobs if not job["id"].startswith("old-")]


def feed_on(conn_id: str = CONN) -> Any:
    from airflow_provider_musicai.hooks.musicai import MusicAIHook
    from airflow_provider_musicai.triggers._job_feed import FinishedJobFeed

    return FinishedJobFeed(MusicAIHook(musicai_conn_id=conn_id), LOG)


async def settled(feed: Any) -> None:
    """The first two polls read the whole listing; from the third on the feed is bounded."""
    for _ in range(2):
        assert (await feed.poll()).complete


def test_a_quiet_poll_on_the_emulator_costs_at_most_three_requests(musicai: Any, hook: Any) -> None:
    """1,000 finished jobs kept (10 pages), nothing changing: the emulator counts what was sent."""
    musicai.admin.add_history(1000)

    def sent() -> int:
        requests = musicai.admin.counters()["requests"]
        return sum(count for endpoint, count in requests.items() if endpoint.startswith("GET /v1/job"))

    async def scenario() -> list[tuple[int, int, bool]]:
        feed = feed_on("musicai_default")
        await settled(feed)
        quiet = []
        for _ in range(3):
            before = sent()
            poll = await feed.poll()
            quiet.append((poll.requests, sent() - before, poll.complete))
            assert poll.jobs == [] or all(job["id"] for job in poll.jobs)
        return quiet

    quiet = arun(scenario())
    assert all(counted == sent <= 3 and not complete for counted, sent, complete in quiet), quiet


def test_a_job_created_and_finished_between_two_polls_is_found_on_the_newest_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = JobListingAPI(honour_status=True, newest_first=True)
    history(api, 300)

    async def scenario() -> Any:
        feed = feed_on()
        await settled(feed)
        await feed.poll()
        put_job(api, "quick", START + timedelta(days=1))
        return await feed.poll()

    with HostileServer(api) as server:
        set_connection(monkeypatch, CONN, server)
        poll = arun(scenario())
    assert new_ids(poll) == ["quick"]
    assert poll.requests <= 3 and not poll.complete


def test_a_job_that_leaves_the_active_listing_is_read_even_when_far_older_than_the_newest_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A long job, created before 300 finished ones: not on the newest page when it ends, so the
    feed reads it by id because it left the active jobs."""
    api = JobListingAPI(honour_status=True, newest_first=True)
    put_job(api, "long", START - timedelta(days=1), status="STARTED")
    history(api, 300)

    async def scenario() -> tuple[Any, int]:
        feed = feed_on()
        await settled(feed)
        assert "long" in feed.active
        put_job(api, "long", START - timedelta(days=1))
        gets = api.gets
        return await feed.poll(), api.gets - gets

    with HostileServer(api) as server:
        set_connection(monkeypatch, CONN, server)
        poll, gets = arun(scenario())
    assert new_ids(poll) == ["long"]
    assert gets == 1 and poll.requests <= 3


def test_a_job_that_vanishes_between_listing_and_confirmation_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = JobListingAPI(honour_status=True, newest_first=True)
    put_job(api, "deleted", START - timedelta(days=1), status="QUEUED")
    history(api, 150)

    async def scenario() -> tuple[Any, Any]:
        feed = feed_on()
        await settled(feed)
        with api.lock:
            del api.jobs["deleted"]  # gone from every listing, and GET /job/deleted answers 404
        put_job(api, "next", START + timedelta(days=1))
        poll = await feed.poll()
        return poll, feed.active

    with HostileServer(api) as server:
        set_connection(monkeypatch, CONN, server)
        poll, active = arun(scenario())
    assert new_ids(poll) == ["next"]
    assert active == {}


def test_a_listing_not_newest_first_is_read_whole_with_one_warning(
    musicai: Any, hook: Any, caplog: pytest.LogCaptureFixture
) -> None:
    musicai.admin.add_history(250)
    musicai.admin.configure(job_list_order="oldest_first")

    async def scenario() -> list[Any]:
        feed = feed_on("musicai_default")
        return [await feed.poll() for _ in range(4)]

    with caplog.at_level(logging.WARNING, logger=LOG.name):
        polls = arun(scenario())
    assert all(poll.complete and poll.requests >= 4 for poll in polls)
    assert all(len({job["id"] for job in poll.jobs}) == 250 for poll in polls)
    assert caplog.text.count("does not list jobs newest first") == 1


def test_pages_shifting_while_read_lose_no_job_and_fire_none_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read of the finished listing lists a job created meanwhile: while a whole listing is
    read, its pages shift by one between two requests (the last job of a page comes again)."""
    from airflow_provider_musicai.triggers.events import MusicAIJobEventTrigger

    added: list[str] = []

    def add_one(request: Request) -> None:
        asked = request.query.get("status", [])
        if "SUCCEEDED" in asked and len(added) < 40:
            added.append(f"new-{len(added):03d}")
            put_job(api, added[-1], datetime.now(UTC) - timedelta(seconds=1))

    api = JobListingAPI(honour_status=True, newest_first=True, before_listing=add_one)
    history(api, 250)
    watcher = MusicAIJobEventTrigger(poll_interval=0.02, musicai_conn_id=CONN, since=stamp(START))

    async def scenario(fired: list[str]) -> None:
        from tests.helpers.reliability import wait_until_async

        await wait_until_async("40 shifts", lambda: len(added) == 40 and set(added) <= set(fired), timeout=60)

    with HostileServer(api) as server:
        set_connection(monkeypatch, CONN, server)
        fired = arun(watching(api, watcher, scenario))
    assert len(fired) == len(set(fired)) == 250 + 40


def test_a_watcher_joining_a_running_shared_stream_catches_up_from_its_watermark(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The shared stream is past its whole first listings when the watcher subscribes: it asks for
    one, and fires the old job its ``since`` covers (once)."""
    from airflow_provider_musicai.triggers.events import MusicAIJobEventTrigger

    api = JobListingAPI(honour_status=True, newest_first=True)
    history(api, 150)
    late = MusicAIJobEventTrigger(poll_interval=0.02, musicai_conn_id=CONN, since=stamp(START))

    async def scenario() -> list[str]:
        stream = MusicAIJobEventTrigger.open_shared_stream(late.serialize()[1])
        for _ in range(3):
            await stream.__anext__()

        async def next_polls() -> AsyncIterator[Any]:
            for _ in range(3):
                yield await stream.__anext__()

        try:
            return [event.payload["job_id"] async for event in late.filter_shared_stream(next_polls())]
        finally:
            await stream.aclose()

    with HostileServer(api) as server:
        set_connection(monkeypatch, CONN, server)
        fired = arun(scenario())
    assert sorted(fired) == [f"old-{index:05d}" for index in range(150)]
