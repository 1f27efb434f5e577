"""A restarted triggerer hands the poller its deferred tasks in batches (``[triggerer]
max_trigger_to_select_per_loop``), while the first listing is already under way: the waiters that
arrive during a listing must wait for the next one, not be fetched one request each."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from airflow_provider_musicai.triggers._poller import SharedJobPoller
from tests.helpers.hooks import HookOn, arun
from tests.helpers.hostile import HostileServer, Reply, Request
from tests.helpers.reliability import wait_until_async
from tests.poller.test_hostile_poller import FakeAPI


class GatedListing(FakeAPI):
    """The first listing is held until the test lets it go."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.listing = threading.Event()
        self.release = threading.Event()

    def __call__(self, request: Request) -> Reply:
        if request.path.endswith("/job") and not self.release.is_set():
            self.listing.set()
            self.release.wait(60)
        return super().__call__(request)


def test_waiters_arriving_during_a_listing_are_not_fetched_one_by_one(
    hook_on: HookOn,
) -> None:
    api = GatedListing(40)
    jobs = sorted(api.status)
    with HostileServer(api) as server:
        poller = SharedJobPoller(hook_on(server, max_retries=2), 0.05)

        async def scenario() -> list[dict[str, Any]]:
            first = asyncio.ensure_future(poller.wait(jobs[0], "wf"))
            await wait_until_async("the first cycle's listing to be in flight", api.listing.is_set)
            rest = [asyncio.ensure_future(poller.wait(job_id, "wf")) for job_id in jobs[1:]]
            await wait_until_async("every newcomer to register", lambda: poller.waiting == len(jobs))
            api.release.set()
            await wait_until_async("three poll cycles", lambda: poller.stats.cycles >= 3)
            # Every job is still QUEUED and the listings saw them all: not one single-job read.
            assert poller.stats.job_requests == 0
            api.finish_all()
            return list(await asyncio.wait_for(asyncio.gather(first, *rest), 60))

        done = arun(scenario())
    assert {job["status"] for job in done} == {"SUCCEEDED"}
    # Handed over from the pages of finished jobs, not by one read each.
    assert poller.stats.finished_from_pages == 40 and poller.stats.job_requests == 0
