"""The shared poller hands finished jobs over from pages of the finished listing (issue 21).

Against the emulator over loopback (requests counted by its admin counters) and against servers
whose listings shift, vanish jobs, are not newest first or ignore their filters: every waiter gets
its own final document exactly once, what no page showed is read singly, and the pages read stay
bounded whatever the account keeps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_musicai.exceptions import MusicAINotFoundError
from airflow_provider_musicai.hooks.musicai import MusicAIHook
from airflow_provider_musicai.triggers._poller import SharedJobPoller
from tests.helpers.hooks import HookOn, arun
from tests.helpers.hostile import HostileServer, JobListingAPI, Reply, Request
from tests.helpers.reliability import wait_until, wait_until_async

STEMS = "music-ai/stems-vocals-accompaniment"
NOWHERE = "http://127.0.0.1:9/x.wav"  # unreachable input: the job ends FAILED (TIMEOUT)
BASE = datetime(2026, 1, 1, tzinfo=UTC)


def create(hook: MusicAIHook, count: int, prefix: str = "job") -> list[str]:
    return [hook.create_job(f"{prefix} {n}", STEMS, {"inputUrl": NOWHERE}) for n in range(count)]


def all_final(emulator: Any, ids: list[str]) -> None:
    wanted = set(ids)
    wait_until(
        f"{len(ids)} jobs to end",
        lambda: (
            sum(
                job["id"] in wanted and job["status"] in {"SUCCEEDED", "FAILED"}
                for job in emulator.admin.jobs()
            )
            == len(wanted)
        ),
        timeout=120,
    )


def job_requests(emulator: Any) -> tuple[int, int]:
    """(``GET /job`` listing pages, ``GET /job/{id}`` reads) the emulator has answered so far."""
    counted = emulator.admin.counters()["requests"]
    return counted.get("GET /v1/job", 0), counted.get("GET /v1/job/{id}", 0)


async def waits(poller: SharedJobPoller, ids: list[str], workflow: str | None = "wf") -> list[Any]:
    """Every wait at once; outcomes (documents or errors) in the order of ``ids``."""
    waited = (poller.wait(job_id, workflow) for job_id in ids)
    return list(await asyncio.gather(*waited, return_exceptions=True))


def stamp(index: int) -> str:
    return (BASE + timedelta(hours=index)).isoformat().replace("+00:00", "Z")


def finished_listing(request: Request) -> bool:
    return "SUCCEEDED" in request.query.get("status", [])


# -- the emulator ---------------------------------------------------------------------------------


def test_a_burst_of_finished_jobs_is_handed_over_by_pages(hook: MusicAIHook, musicai_emulator: Any) -> None:
    """250 waits on jobs that all finished (as after a burst, or a triggerer restart), on an account
    keeping 2,000 older finished jobs of the same workflow: a few pages, no single read."""
    musicai_emulator.admin.add_history(2000, workflow=STEMS)
    musicai_emulator.admin.configure(queued_seconds=0, processing_seconds=0, input_timeout_seconds=0.05)
    ids = create(hook, 250)
    all_final(musicai_emulator, ids)
    poller = SharedJobPoller(hook, poll_interval=0.1)
    pages_before, reads_before = job_requests(musicai_emulator)

    jobs = arun(waits(poller, ids, STEMS))

    pages, reads = job_requests(musicai_emulator)
    assert [job["id"] for job in jobs] == ids  # each waiter its own document
    assert {job["status"] for job in jobs} == {"FAILED"}
    assert poller.stats.finished == poller.stats.finished_from_pages == 250
    assert reads - reads_before == 0
    assert (pages - pages_before) + (reads - reads_before) <= math.ceil(250 / 100) * 2 + 50
    assert pages - pages_before == poller.stats.list_requests  # the emulator agrees with the poller


def test_jobs_deep_in_the_history_cost_two_pages_then_single_reads(
    hook: MusicAIHook, musicai_emulator: Any
) -> None:
    """5 waited jobs below 300 newer finished ones: the walk gives up after two pages that show none
    of them (its spare pages; five jobs are not worth more), and reads them singly, instead of
    walking the account's history."""
    musicai_emulator.admin.configure(queued_seconds=0, processing_seconds=0, input_timeout_seconds=0.05)
    ids = create(hook, 5)
    newer = create(hook, 300, prefix="newer")
    all_final(musicai_emulator, ids + newer)
    poller = SharedJobPoller(hook, poll_interval=0.1)

    jobs = arun(waits(poller, ids, STEMS))

    assert [job["id"] for job in jobs] == ids
    assert poller.stats.job_requests == 5
    assert poller.stats.list_requests <= 2 + 2  # the (empty) active listing, then two finished pages


def test_many_jobs_below_newer_ones_are_still_found_on_their_pages(
    hook: MusicAIHook, musicai_emulator: Any
) -> None:
    """50 waited jobs below 300 newer finished ones (as after a triggerer restart, whose first
    waits are the oldest jobs): worth three pages of walking, found on the fourth."""
    musicai_emulator.admin.configure(queued_seconds=0, processing_seconds=0, input_timeout_seconds=0.05)
    ids = create(hook, 50)
    newer = create(hook, 300, prefix="newer")
    all_final(musicai_emulator, ids + newer)
    poller = SharedJobPoller(hook, poll_interval=0.1)

    jobs = arun(waits(poller, ids, STEMS))

    assert [job["id"] for job in jobs] == ids
    assert poller.stats.finished_from_pages == 50 and poller.stats.job_requests == 0


def test_a_listing_oldest_first_falls_back_to_single_reads_with_a_warning(
    hook: MusicAIHook, musicai_emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The page that showed the wrong order still hands its final documents over (they are the
    jobs' own); from then on the poller does not walk the finished listing: single reads."""
    musicai_emulator.admin.configure(job_list_order="oldest_first")
    musicai_emulator.admin.add_history(9, workflow=STEMS, spacing_seconds=3600)  # an hour apart
    kept = [job["id"] for job in musicai_emulator.admin.jobs()]
    ids, later = kept[:6], kept[6:]
    poller = SharedJobPoller(hook, poll_interval=0.1)

    with caplog.at_level(logging.WARNING, logger="airflow_provider_musicai.triggers._poller"):
        jobs = arun(waits(poller, ids, STEMS))
        pages_before, _ = job_requests(musicai_emulator)
        jobs += arun(waits(poller, later, STEMS))
        pages, _ = job_requests(musicai_emulator)

    assert [job["id"] for job in jobs] == ids + later
    assert not poller.ordered
    assert caplog.text.count("does not list jobs newest first") == 1
    assert poller.stats.finished_from_pages >= 1  # what the first page showed
    assert poller.stats.job_requests == 3 + (6 - poller.stats.finished_from_pages)
    assert pages - pages_before <= 2  # the active listing only: no walk


# -- servers that misbehave -----------------------------------------------------------------------


def test_pages_that_shift_down_while_a_burst_is_read_lose_nothing(hook_on: HookOn) -> None:
    """30 newer finished jobs appear before each further page: the next page repeats 30 jobs of the
    previous one. They are neither handed over twice nor taken for a listing out of order."""
    inserted: set[str] = set()

    def shift(request: Request) -> None:
        page = request.param("page", "0")
        if finished_listing(request) and page != "0" and page not in inserted:
            inserted.add(page or "")
            for n in range(30):
                api.put(
                    f"new-{page}-{n}", status="SUCCEEDED", createdAt=stamp(10_000 + 100 * int(page or 0) + n)
                )

    api = JobListingAPI(honour_status=True, newest_first=True, before_listing=shift)
    ids = [f"job-{n:03d}" for n in range(250)]
    for n, job_id in enumerate(ids):
        api.put(job_id, status="SUCCEEDED", createdAt=stamp(n), result={"n": n})
    with HostileServer(api) as server:
        poller = SharedJobPoller(hook_on(server, max_retries=1), 0.05)
        jobs = arun(waits(poller, ids))

    assert [(job["id"], job["result"]["n"]) for job in jobs] == [(job_id, n) for n, job_id in enumerate(ids)]
    assert inserted == {"1", "2", "3"}  # the listing did shift before each further page
    assert poller.ordered
    assert poller.stats.finished == poller.stats.finished_from_pages == 250
    assert api.gets == 0


def test_pages_that_shift_up_while_a_burst_is_read_leave_the_skipped_jobs_to_single_reads(
    hook_on: HookOn,
) -> None:
    """The 30 newest jobs (nobody waits on them) are deleted before the second page: 30 waited jobs
    move onto the page already read and are never listed. Each is read on its own, none is lost."""

    def delete_newest(request: Request) -> None:
        if finished_listing(request) and request.param("page") == "1":
            with api.lock:
                for n in range(30):
                    api.jobs.pop(f"newest-{n}", None)

    api = JobListingAPI(honour_status=True, newest_first=True, before_listing=delete_newest)
    ids = [f"job-{n:03d}" for n in range(250)]
    for n, job_id in enumerate(ids):
        api.put(job_id, status="SUCCEEDED", createdAt=stamp(n))
    for n in range(30):
        api.put(f"newest-{n}", status="SUCCEEDED", createdAt=stamp(1000 + n))
    with HostileServer(api) as server:
        poller = SharedJobPoller(hook_on(server, max_retries=1), 0.05)
        jobs = arun(waits(poller, ids))

    assert [job["id"] for job in jobs] == ids
    assert {job["status"] for job in jobs} == {"SUCCEEDED"}
    assert poller.stats.finished == 250
    assert poller.stats.finished_from_pages == 220
    assert poller.stats.job_requests == api.gets == 30


def test_a_job_that_vanishes_between_listing_and_confirmation_is_an_error_for_its_waiter(
    hook_on: HookOn,
) -> None:
    """``gone`` is not in the active listing (it finished), then is deleted before the finished
    listing is read: no page shows it, its single read answers 404, its waiter alone gets the error."""

    def delete_gone(request: Request) -> None:
        if finished_listing(request):
            with api.lock:
                api.jobs.pop("gone", None)

    api = JobListingAPI(honour_status=True, newest_first=True, before_listing=delete_gone)
    api.put("kept", status="SUCCEEDED", createdAt=stamp(1))
    api.put("gone", status="SUCCEEDED", createdAt=stamp(2))
    with HostileServer(api) as server:
        poller = SharedJobPoller(hook_on(server, max_retries=1), 0.05)
        kept, gone = arun(waits(poller, ["kept", "gone"]))

    assert kept["id"] == "kept" and kept["status"] == "SUCCEEDED"
    assert isinstance(gone, MusicAINotFoundError)
    assert api.gets == 1


def test_a_listing_out_of_order_is_not_trusted_to_bound_the_walk(
    hook_on: HookOn, caplog: pytest.LogCaptureFixture
) -> None:
    """A finished listing in creation order (oldest first): one warning, no further walks, every
    job still handed over."""
    api = JobListingAPI(honour_status=True, newest_first=False)
    ids = [f"job-{n}" for n in range(5)]
    for n, job_id in enumerate(ids):
        api.put(job_id, status="SUCCEEDED", createdAt=stamp(n))
    with HostileServer(api) as server:
        poller = SharedJobPoller(hook_on(server, max_retries=1), 0.05)
        with caplog.at_level(logging.WARNING, logger="airflow_provider_musicai.triggers._poller"):
            first = arun(waits(poller, ids))
            listings = api.listings
            again = arun(waits(poller, ids))

    assert [job["id"] for job in first] == [job["id"] for job in again] == ids
    assert not poller.ordered
    assert caplog.text.count("does not list jobs newest first") == 1
    assert api.listings - listings <= 2  # the second wait: the active listing only, no walk
    # The first wait took the page's documents (the jobs' own); the second read each job singly.
    assert poller.stats.finished_from_pages == 5
    assert api.gets == 5


class FinishedListingIgnoresStatus(JobListingAPI):
    """Honours ``status`` for the active listing, ignores it for the finished one (a stale cache)."""

    def __call__(self, request: Request) -> Reply:
        if finished_listing(request):
            request = dataclasses.replace(
                request, query={k: v for k, v in request.query.items() if k != "status"}
            )
        return super().__call__(request)


def test_a_finished_listing_that_ignores_its_filters_hands_over_only_what_the_documents_say(
    hook_on: HookOn,
) -> None:
    """The "finished" listing also lists active jobs and other workflows' jobs. ``running`` (missed
    by the active listing) stays waited on because its own status says STARTED; ``elsewhere``,
    whose document names another workflow than its waiter's, is not taken from the page."""
    api = FinishedListingIgnoresStatus(honour_status=True, newest_first=True)
    api.put("done", status="SUCCEEDED", createdAt=stamp(3))
    api.put("running", status="STARTED", createdAt=stamp(2))
    api.put("elsewhere", status="SUCCEEDED", createdAt=stamp(1), workflow="other")
    hidden = {"running"}  # the active listing misses it once (a shifting page)
    original = api.__call__

    def answer(request: Request) -> Reply:
        reply = original(request)
        if not finished_listing(request) and request.path.endswith("/job") and hidden:
            hidden.clear()
            reply.json_body = {"jobs": [job for job in reply.json_body["jobs"] if job["id"] != "running"]}
        return reply

    with HostileServer(answer) as server:
        poller = SharedJobPoller(hook_on(server, max_retries=1), 0.05)

        async def scenario() -> list[Any]:
            gathered = asyncio.ensure_future(waits(poller, ["done", "running", "elsewhere"]))
            await wait_until_async("two cycles", lambda: poller.stats.cycles >= 2)
            assert poller.stats.finished == 2  # done and elsewhere; running is still waited on
            api.put("running", status="SUCCEEDED")
            return list(await asyncio.wait_for(gathered, 60))

        done, running, elsewhere = arun(scenario())

    assert (done["id"], running["id"], elsewhere["id"]) == ("done", "running", "elsewhere")
    assert {done["status"], running["status"], elsewhere["status"]} == {"SUCCEEDED"}
    assert api.gets == 1  # elsewhere only: its page document was not taken


def test_the_finished_listing_is_filtered_by_the_batch_all_waited_jobs_share(
    hook_on: HookOn,
) -> None:
    asked: list[dict[str, list[str]]] = []

    def record(request: Request) -> None:
        if finished_listing(request):
            asked.append(request.query)

    api = JobListingAPI(honour_status=True, newest_first=True, before_listing=record)
    for n in range(3):
        api.put(f"job-{n}", status="STARTED", createdAt=stamp(n), batchName="nightly")
    with HostileServer(api) as server:
        poller = SharedJobPoller(hook_on(server, max_retries=1), 0.05)

        async def scenario() -> list[Any]:
            gathered = asyncio.ensure_future(waits(poller, [f"job-{n}" for n in range(3)]))
            await wait_until_async("a cycle that saw the jobs active", lambda: poller.stats.cycles >= 1)
            for n in range(3):
                api.put(f"job-{n}", status="SUCCEEDED")
            return list(await asyncio.wait_for(gathered, 60))

        jobs = arun(scenario())

    assert {job["status"] for job in jobs} == {"SUCCEEDED"}
    assert asked and all(query.get("batchName") == ["nightly"] for query in asked)
    assert all(query.get("workflow") == ["wf"] for query in asked)


def test_a_job_a_shift_hid_from_both_listings_gets_one_more_cycle_before_a_single_read(
    hook_on: HookOn,
) -> None:
    """``hidden`` (listed active, then skipped once by the active listing, as pages shifting under
    a burst skip jobs) is not read on its own: the next cycle lists it again. ``deleted`` (listed
    active, then deleted) is missing twice in a row, then read: its 404 is its waiter's error."""
    api = JobListingAPI(honour_status=True, newest_first=True)
    api.put("hidden", status="STARTED", createdAt=stamp(1))
    api.put("deleted", status="STARTED", createdAt=stamp(2))
    hide = {"armed": False}

    def answer(request: Request) -> Reply:
        reply = api(request)
        active_listing = request.path.endswith("/job") and not finished_listing(request)
        if hide["armed"] and active_listing and request.param("page", "0") == "0":
            hide["armed"] = False
            reply.json_body = {"jobs": [job for job in reply.json_body["jobs"] if job["id"] != "hidden"]}
        return reply

    with HostileServer(answer) as server:
        poller = SharedJobPoller(hook_on(server, max_retries=1), 0.05)

        async def scenario() -> list[Any]:
            gathered = asyncio.ensure_future(waits(poller, ["hidden", "deleted"]))
            await wait_until_async("a cycle that listed both active", lambda: poller.stats.cycles >= 1)
            with api.lock:
                api.jobs.pop("deleted")
            hide["armed"] = True
            cycles = poller.stats.cycles
            await wait_until_async("three more cycles", lambda: poller.stats.cycles >= cycles + 3)
            assert not hide["armed"]  # the active listing did skip it
            assert api.gets == 1  # deleted, on its second cycle missing; hidden was never read
            api.put("hidden", status="SUCCEEDED")
            return list(await asyncio.wait_for(gathered, 60))

        hidden, deleted = arun(scenario())

    assert hidden["id"] == "hidden" and hidden["status"] == "SUCCEEDED"
    assert isinstance(deleted, MusicAINotFoundError)
    assert api.gets == 1


def test_many_jobs_hidden_twice_are_listed_again_rather_than_read_one_by_one(
    hook_on: HookOn,
) -> None:
    """Ten active jobs skipped by two active listings in a row (pages shifting under a burst):
    ten single reads would cost more than the one page of listing them again, so they are listed
    again, and no job is read on its own."""
    api = JobListingAPI(honour_status=True, newest_first=True)
    ids = [f"job-{n}" for n in range(10)]
    for n, job_id in enumerate(ids):
        api.put(job_id, status="STARTED", createdAt=stamp(n))
    hide = {"listings": 0}

    def answer(request: Request) -> Reply:
        reply = api(request)
        active_listing = request.path.endswith("/job") and not finished_listing(request)
        if hide["listings"] and active_listing and request.param("page", "0") == "0":
            hide["listings"] -= 1
            reply.json_body = {"jobs": []}
        return reply

    with HostileServer(answer) as server:
        poller = SharedJobPoller(hook_on(server, max_retries=1), 0.05)

        async def scenario() -> list[Any]:
            gathered = asyncio.ensure_future(waits(poller, ids))
            await wait_until_async("a cycle that listed them active", lambda: poller.stats.cycles >= 1)
            hide["listings"] = 2
            cycles = poller.stats.cycles
            await wait_until_async("three more cycles", lambda: poller.stats.cycles >= cycles + 3)
            assert hide["listings"] == 0  # two listings did hide them
            for job_id in ids:
                api.put(job_id, status="SUCCEEDED")
            return list(await asyncio.wait_for(gathered, 60))

        jobs = arun(scenario())

    assert [job["id"] for job in jobs] == ids
    assert api.gets == 0
    assert poller.stats.finished_from_pages == 10
