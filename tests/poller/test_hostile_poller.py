"""The shared poller against servers that are not the emulator: a silent page-size cap, a listing
that never ends, an unreadable answer. No answer may fail more waiters than it concerns."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from airflow_provider_musicai.exceptions import MusicAIError
from airflow_provider_musicai.triggers._poller import SharedJobPoller
from tests.helpers.hooks import HookOn, arun
from tests.helpers.hostile import HostileServer, JobListingAPI, Reply, Request, paged
from tests.helpers.reliability import wait_until_async

HTML = b"<html><body>502 Bad Gateway</body></html>"


class FakeAPI:
    """Jobs of workflow ``wf`` whose status the test sets; listings served ``served_size`` a page."""

    def __init__(self, count: int, *, served_size: int | None = None, repeat_pages: bool = False) -> None:
        self.status = {f"job-{n:02d}": "QUEUED" for n in range(count)}
        self.served_size = served_size
        self.repeat_pages = repeat_pages
        self.html_for: set[str] = set()  # "list" or job ids: answer the next such request with HTML
        self.lock = threading.Lock()

    def doc(self, job_id: str) -> dict[str, Any]:
        return {"id": job_id, "status": self.status[job_id], "workflow": "wf", "result": {}}

    def __call__(self, request: Request) -> Reply:
        with self.lock:
            target = "list" if request.path.endswith("/job") else request.path.rsplit("/", 1)[-1]
            if target in self.html_for:
                self.html_for.discard(target)
                return Reply(200, body=HTML, headers={"content-type": "text/html"})
            if target != "list":
                return Reply(200, json_body=self.doc(target))
            wanted = set(request.query.get("status", []))
            active = [self.doc(job_id) for job_id, status in self.status.items() if status in wanted]
        if self.repeat_pages:
            return Reply(200, json_body={"jobs": active[:7]})
        return Reply(200, json_body={"jobs": paged(active, request, served_size=self.served_size)})

    def finish_all(self) -> None:
        with self.lock:
            self.status = dict.fromkeys(self.status, "SUCCEEDED")


def test_a_silent_page_size_cap_does_not_hide_active_jobs(hook_on: HookOn) -> None:
    api = FakeAPI(30, served_size=7)
    with HostileServer(api) as server:
        poller = SharedJobPoller(hook_on(server, max_retries=2), 0.05, page_size=20)

        async def scenario() -> list[dict[str, Any]]:
            waits = asyncio.gather(*(poller.wait(job_id, "wf") for job_id in api.status))
            await wait_until_async("three poll cycles", lambda: poller.stats.cycles >= 3)
            api.finish_all()
            return list(await asyncio.wait_for(waits, 60))

        jobs = arun(scenario())
    assert {job["status"] for job in jobs} == {"SUCCEEDED"}
    # Every active job was seen in the listing, and every finished one on a page of finished jobs:
    # no single read (a capped listing read as complete fetched the 23 unlisted jobs every cycle).
    assert poller.stats.job_requests == 0
    assert poller.stats.finished_from_pages == 30


def test_an_endless_listing_ends_each_wait_typed_instead_of_hanging(hook_on: HookOn) -> None:
    with HostileServer(FakeAPI(20, repeat_pages=True)) as server:
        hook = hook_on(server, max_retries=2)
        poller = SharedJobPoller(hook, 0.01, page_size=7, max_consecutive_failures=3)

        async def scenario() -> list[Any]:
            waits = (poller.wait(f"job-{n:02d}", "wf") for n in range(2))
            return list(await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), 60))

        outcomes = arun(scenario())
    assert all(isinstance(outcome, MusicAIError) for outcome in outcomes)
    assert all("3 times in a row" in str(o) and "repeats the previous page" in str(o) for o in outcomes)


def test_one_unreadable_answer_fails_no_waiter(hook_on: HookOn) -> None:
    api = FakeAPI(3)
    api.html_for = {"list", "job-01"}  # the first listing, and job-01's first fetch, are HTML
    with HostileServer(api) as server:
        poller = SharedJobPoller(hook_on(server, max_retries=2), 0.05, max_consecutive_failures=3)

        async def scenario() -> list[dict[str, Any]]:
            waits = [poller.wait("job-00", "wf"), poller.wait("job-01", None), poller.wait("job-02", "wf")]
            gathered = asyncio.gather(*waits)
            await wait_until_async(
                "both HTML answers and two cycles", lambda: not api.html_for and poller.stats.cycles >= 2
            )
            api.finish_all()
            return list(await asyncio.wait_for(gathered, 60))

        jobs = arun(scenario())
    assert [job["status"] for job in jobs] == ["SUCCEEDED"] * 3
    assert poller.stats.failures >= 1  # the HTML listing was seen, and counted, not fatal


def test_a_listing_that_ignores_the_status_filter_does_not_keep_finished_jobs_waiting(
    hook_on: HookOn,
) -> None:
    """Each listed job's own status decides: a SUCCEEDED or FAILED job in the "active" listing is
    confirmed and handed over within a cycle or two, not waited on until a timeout."""
    api = JobListingAPI(honour_status=False, max_listings=50)
    for n in range(3):
        api.put(f"job-{n:02d}")
    with HostileServer(api) as server:
        poller = SharedJobPoller(hook_on(server, max_retries=2), 0.02)

        async def scenario() -> tuple[list[dict[str, Any]], int]:
            waits = asyncio.gather(*(poller.wait(f"job-{n:02d}", "wf") for n in range(3)))
            await wait_until_async("two poll cycles", lambda: poller.stats.cycles >= 2)
            finished_at = poller.stats.cycles
            api.put("job-00", status="SUCCEEDED")
            api.put("job-01", status="FAILED", error={"code": "X"})
            api.put("job-02", status="SUCCEEDED")
            return list(await asyncio.wait_for(waits, 60)), finished_at

        jobs, finished_at = arun(scenario())
    assert [job["status"] for job in jobs] == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
    assert poller.stats.cycles <= finished_at + 2
