"""The shared poller: many waiters, a few list requests per cycle, each waiter its own final job."""

from __future__ import annotations

import asyncio
from typing import Any

from airflow_provider_musicai.exceptions import MusicAIAuthError, MusicAINotFoundError
from airflow_provider_musicai.hooks.musicai import MusicAIHook
from airflow_provider_musicai.triggers._poller import SharedJobPoller, shared_poller
from tests.helpers.hooks import HookOn, arun
from tests.helpers.reliability import wait_until_async

STEMS = "music-ai/stems-vocals-accompaniment"
BEATS = "music-ai/beats-chords-key"
NOWHERE = "http://127.0.0.1:9/x.wav"  # unreachable input: the job ends FAILED (TIMEOUT)


def create(hook: MusicAIHook, count: int, workflow: str = STEMS) -> list[str]:
    return [hook.create_job(f"job {n}", workflow, {"inputUrl": NOWHERE}) for n in range(count)]


def test_each_waiter_gets_its_own_final_document(hook: MusicAIHook, musicai_emulator: Any) -> None:
    musicai_emulator.admin.configure(input_timeout_seconds=0.2)
    ids = create(hook, 30)
    poller = SharedJobPoller(hook, poll_interval=0.3)

    async def scenario() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(poller.wait(job_id, STEMS) for job_id in ids)))

    jobs = arun(scenario())
    assert [job["id"] for job in jobs] == ids
    assert {job["status"] for job in jobs} == {"FAILED"}
    assert poller.waiting == 0
    # While jobs are active a cycle costs one listing (30 jobs < one page: two requests, as a short
    # first page is confirmed by one more on a connection never seen serving a full page); a job
    # that left the active set is handed over once, from a page of finished jobs or else read once.
    assert poller.stats.finished == len(ids)
    assert poller.stats.job_requests <= len(ids) - poller.stats.finished_from_pages
    assert poller.stats.cycles <= poller.stats.list_requests


def test_statuses_are_reported_in_the_callers_task(hook: MusicAIHook, musicai_emulator: Any) -> None:
    musicai_emulator.admin.configure(queued_seconds=0.5, processing_seconds=0.5, input_timeout_seconds=0.2)
    [job_id] = create(hook, 1)
    poller = SharedJobPoller(hook, poll_interval=0.1)
    seen: list[tuple[str, asyncio.Task[Any] | None]] = []

    async def scenario() -> dict[str, Any]:
        me = asyncio.current_task()
        job = await poller.wait(
            job_id, None, on_status=lambda status: seen.append((status, asyncio.current_task()))
        )
        assert all(task is me for _, task in seen)
        return job

    assert arun(scenario())["status"] == "FAILED"
    statuses = [status for status, _ in seen]
    assert statuses[-1] == "FAILED"
    assert statuses == sorted(set(statuses), key=statuses.index)  # each change once, in order


def test_jobs_no_one_waits_on_do_not_cost_requests(hook: MusicAIHook, musicai_emulator: Any) -> None:
    musicai_emulator.admin.configure(queued_seconds=60)
    create(hook, 150, workflow=BEATS)  # another workflow, active the whole time
    musicai_emulator.admin.configure(queued_seconds=0.5, input_timeout_seconds=0.2)
    ids = create(hook, 3)
    poller = SharedJobPoller(hook, poll_interval=0.3)

    async def scenario() -> None:
        await asyncio.gather(*(poller.wait(job_id, STEMS) for job_id in ids))

    arun(scenario())
    assert max(poller.stats.requests_per_cycle) <= 2 + len(ids)
    assert poller.stats.cycles <= poller.stats.list_requests <= 2 * poller.stats.cycles


def test_page_shifts_never_lose_or_misreport_a_job(hook: MusicAIHook, musicai_emulator: Any) -> None:
    # Small pages and jobs finishing all the time: pages shift between requests of one cycle.
    musicai_emulator.admin.configure(queued_seconds=0.1, processing_seconds=0.1, input_timeout_seconds=0.05)
    ids = []
    for batch in range(6):
        musicai_emulator.admin.configure(queued_seconds=0.2 * batch)
        ids += create(hook, 8)
    poller = SharedJobPoller(hook, poll_interval=0.05, page_size=3)

    async def scenario() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(poller.wait(job_id, STEMS) for job_id in ids)))

    jobs = arun(scenario())
    assert [job["id"] for job in jobs] == ids
    assert all(job["status"] in {"SUCCEEDED", "FAILED"} for job in jobs)


def test_cancelling_one_waiter_leaves_the_others_and_the_poller_stops(
    hook: MusicAIHook, musicai_emulator: Any
) -> None:
    # Time stands still: every job stays QUEUED until the test moves the clock, however busy the machine.
    musicai_emulator.admin.configure(
        manual_clock=True, queued_seconds=1.0, processing_seconds=0, input_timeout_seconds=0.2
    )
    ids = create(hook, 3)
    poller = SharedJobPoller(hook, poll_interval=0.1)

    async def scenario() -> tuple[list[Any], asyncio.Task[None] | None]:
        tasks = [asyncio.ensure_future(poller.wait(job_id, STEMS)) for job_id in ids]
        await wait_until_async(
            "a poll cycle over the three waiters", lambda: poller.waiting == 3 and poller.stats.cycles >= 1
        )
        tasks[0].cancel()
        await wait_until_async("the cancelled waiter to leave", lambda: poller.waiting == 2)
        await asyncio.to_thread(musicai_emulator.admin.advance_clock, 1.0)  # the jobs start, then fail
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await wait_until_async(
            "the poller to stop once nobody waits", lambda: poller._task is not None and poller._task.done()
        )
        return results, poller._task

    results, task = arun(scenario())
    assert isinstance(results[0], asyncio.CancelledError)
    assert [job["id"] for job in results[1:]] == ids[1:]
    assert {job["status"] for job in results[1:]} == {"FAILED"}
    assert poller.waiting == 0
    assert task is not None and task.done()


def test_deleted_job_fails_only_its_waiter(hook: MusicAIHook, musicai_emulator: Any) -> None:
    musicai_emulator.admin.configure(queued_seconds=1.0, input_timeout_seconds=0.2)
    doomed, kept = create(hook, 2)
    hook.delete_job(doomed)
    poller = SharedJobPoller(hook, poll_interval=0.1)

    async def scenario() -> list[Any]:
        return list(
            await asyncio.gather(poller.wait(doomed, STEMS), poller.wait(kept, STEMS), return_exceptions=True)
        )

    gone, job = arun(scenario())
    assert isinstance(gone, MusicAINotFoundError)
    assert job["id"] == kept


def test_transient_list_failures_are_survived(hook_on: HookOn, musicai_emulator: Any) -> None:
    hook = hook_on(max_retries=0)
    musicai_emulator.admin.configure(queued_seconds=0.5, input_timeout_seconds=0.2)
    ids = create(hook, 2)
    musicai_emulator.admin.script_faults({"match": "GET /v1/job", "fault": "503", "count": 3})
    poller = SharedJobPoller(hook, poll_interval=0.1)

    async def scenario() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(poller.wait(job_id, STEMS) for job_id in ids)))

    assert [job["id"] for job in arun(scenario())] == ids
    assert poller.stats.failures == 3


def test_revoked_key_fails_every_waiter(hook_on: HookOn, musicai_emulator: Any) -> None:
    good = hook_on()
    ids = create(good, 2)
    revoked = hook_on(conn_id="musicai_revoked", key="revoked-key")
    poller = SharedJobPoller(revoked, poll_interval=0.1)

    async def scenario() -> list[Any]:
        return list(
            await asyncio.gather(*(poller.wait(job_id, STEMS) for job_id in ids), return_exceptions=True)
        )

    assert all(isinstance(error, MusicAIAuthError) for error in arun(scenario()))


def test_one_poller_per_loop_and_connection(hook_on: HookOn) -> None:
    hook_on(conn_id="musicai_default")

    async def scenario() -> tuple[SharedJobPoller, SharedJobPoller, SharedJobPoller]:
        return (
            shared_poller("musicai_default", 1.0),
            shared_poller("musicai_default", 1.0),
            shared_poller("x", 1.0),
        )

    first, again, other = arun(scenario())
    assert first is again
    assert other is not first
    # A new event loop (a restarted triggerer) gets a fresh poller.
    assert arun(scenario())[0] is not first


def test_a_loop_per_trigger_run_leaves_no_loop_client_or_poller_behind(
    hook_on: HookOn,
) -> None:
    """``dag.test()`` runs each trigger with ``asyncio.run``: a closed loop's client and poller go.

    Their per-loop registries are keyed weakly, but a client's pooled connections (and a
    poller's task) refer to their loop, so without dropping closed loops every run kept its loop,
    client and SSL context alive (~0.8 MiB of native memory each: the catalog benchmark grew by
    ~1 MiB per wake-up). Plain ``asyncio.run``, no ``close_shared_async_clients()``, as Airflow does.
    """
    import gc
    import weakref

    from airflow_provider_musicai.hooks import _transport
    from airflow_provider_musicai.triggers import _poller

    hook_on(conn_id="musicai_default")
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def trigger_run() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        poller = shared_poller("musicai_default", 1.0)
        async for _ in poller.hook.alist_job_pages(status=["QUEUED"], workflow=[STEMS]):
            pass  # one request: the loop's client now holds a pooled connection

    for _ in range(4):
        asyncio.run(trigger_run())
    gc.collect()
    assert [loop() is None for loop in loops[:-1]] == [True, True, True]
    assert len(_transport._ASYNC_CLIENTS) <= 1 and len(_poller._POLLERS) <= 1


def test_cycles_start_every_poll_interval_however_long_they_take() -> None:
    # Sleeping a whole interval after a cycle made the period interval + cycle time: 1,000 jobs
    # finishing within two cycles (500 confirmations each) pushed the p99 delay past interval + 1 s.
    poller = SharedJobPoller(MusicAIHook("musicai_unused"), poll_interval=10.0)
    assert poller.pause_after(0.25) == 9.75
    assert poller.pause_after(3.0) == 7.0
    assert poller.pause_after(12.0) == 0.0


def test_a_job_that_can_never_be_read_ends_only_its_own_wait(hook_on: HookOn, musicai_emulator: Any) -> None:
    hook = hook_on(max_retries=0)
    musicai_emulator.admin.configure(queued_seconds=0.3, input_timeout_seconds=0.2)
    unreadable, fine = create(hook, 2)
    musicai_emulator.admin.set_faults(rate=1.0, weights={"503": 1}, match=[f"GET /v1/job/{unreadable}"])
    poller = SharedJobPoller(hook, poll_interval=0.1, max_consecutive_failures=3)

    async def scenario() -> list[Any]:
        # Its workflow unknown, the unreadable job can be followed only by reading it on its own.
        return list(
            await asyncio.gather(
                poller.wait(unreadable, None), poller.wait(fine, STEMS), return_exceptions=True
            )
        )

    error, job = arun(scenario())
    assert "3 times in a row" in str(error)
    assert job["id"] == fine


def test_statuses_seen_in_the_active_listing_are_reported(hook: MusicAIHook, musicai_emulator: Any) -> None:
    # Queued long enough to be seen QUEUED by the first cycle even on a busy machine.
    musicai_emulator.admin.configure(queued_seconds=2.0, processing_seconds=0.6, input_timeout_seconds=0.2)
    [job_id] = create(hook, 1)
    poller = SharedJobPoller(hook, poll_interval=0.1)
    seen: list[str] = []
    assert arun(poller.wait(job_id, STEMS, on_status=seen.append))["status"] == "FAILED"
    assert seen[0] == "QUEUED"
    assert seen[-1] == "FAILED"
    # The active listing told QUEUED/STARTED; a page of finished jobs confirmed the end: no single read.
    assert poller.stats.job_requests == 0 and poller.stats.finished_from_pages == 1
