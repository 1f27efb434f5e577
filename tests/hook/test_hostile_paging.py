"""Paging against servers that are not the emulator: silent page-size caps, ignored ``page``,
listings that never end. One rule (hooks/_paging.py) serves list_jobs, alist_jobs,
list_workflows and the idempotency lookup; the shared poller's case is in tests/poller."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from airflow_provider_musicai.exceptions import MusicAIError, MusicAIPagingError
from airflow_provider_musicai.hooks.musicai import MusicAIHook
from airflow_provider_musicai.jobs import IDEMPOTENCY_METADATA_KEY
from tests.helpers.hooks import HookOn, arun
from tests.helpers.hostile import HostileServer, Reply, Request, paged

pytestmark = pytest.mark.airflow_independent

JOBS = [{"id": f"job-{n:02d}", "status": "QUEUED", "workflow": "wf"} for n in range(30)]
WORKFLOWS = [{"id": f"wf-{n}", "slug": f"slug-{n}", "name": f"Workflow {n}"} for n in range(30)]


def listing_server(*, served_size: int | None = None, offset_by_asked: bool = False) -> HostileServer:
    """Serves JOBS and WORKFLOWS, at most ``served_size`` a page, offsetting pages by the served
    size (``paged``) or by the asked one (``offset_by_asked``, which skips the items it withheld)."""

    def answer(request: Request) -> Reply:
        items = JOBS if request.path.endswith("/job") else WORKFLOWS
        if offset_by_asked:
            page, size = int(request.param("page") or 0), int(request.param("size") or 100)
            served = items[page * size : page * size + (served_size or size)]
        else:
            served = paged(items, request, served_size=served_size)
        key = "jobs" if items is JOBS else "workflows"
        return Reply(200, json_body={key: served})

    return HostileServer(answer)


async def alisted(hook: MusicAIHook, page_size: int) -> list[str]:
    return [job["id"] async for job in hook.alist_jobs(page_size=page_size)]


@pytest.mark.parametrize("offset_by_asked", [False, True], ids=["offset-by-served", "offset-by-asked"])
def test_a_silent_page_size_cap_loses_no_job_sync_or_async(hook_on: HookOn, offset_by_asked: bool) -> None:
    with listing_server(served_size=7, offset_by_asked=offset_by_asked) as server:
        hook = hook_on(server, max_retries=2)
        expected = [job["id"] for job in JOBS]
        assert [job["id"] for job in hook.list_jobs(page_size=20)] == expected
        assert arun(alisted(hook_on(server, conn_id="other", max_retries=2), 20)) == expected
        assert [w["id"] for w in hook.list_workflows(page_size=20)] == [w["id"] for w in WORKFLOWS]


def test_a_server_serving_more_than_asked_loses_no_job(hook_on: HookOn) -> None:
    # Ignores ``size`` (serves 25 a page) but offsets pages by the asked size: the listing must go
    # on with the size really served, or it would list jobs twice.
    def answer(request: Request) -> Reply:
        start = int(request.param("page") or 0) * int(request.param("size") or 100)
        return Reply(json_body={"jobs": JOBS[start : start + 25]})

    with HostileServer(answer) as server:
        hook = hook_on(server, max_retries=2)
        assert [job["id"] for job in hook.list_jobs(page_size=10)] == [job["id"] for job in JOBS]


def test_short_pages_end_a_listing_once_full_pages_were_seen(hook_on: HookOn) -> None:
    with listing_server() as server:
        hook = hook_on(server, max_retries=2)
        assert len(list(hook.list_jobs(page_size=20))) == 30  # 20, then 10: short after a full page
        assert len(server.requests_to("GET", "/v1/job")) == 2
        # A first page shorter than asked, on a connection never seen serving 100: one more request
        # (with the served size) tells a cap from the end of the listing.
        assert len(list(hook.list_jobs(page_size=100))) == 30
        assert [r.query["size"] for r in server.requests_to("GET", "/v1/job")[2:]] == [["100"], ["30"]]


def repeating_server(page: list[dict[str, Any]], key: str = "jobs") -> HostileServer:
    """A server, or a cache keyed on the path, that ignores ``page`` and repeats one page."""
    return HostileServer(lambda request: Reply(200, json_body={key: page}))


@pytest.mark.parametrize("served", [20, 7], ids=["full-page", "capped-page"])
def test_a_repeated_page_is_a_typed_error_sync_async_and_workflows(hook_on: HookOn, served: int) -> None:
    with repeating_server(JOBS[:served]) as jobs, repeating_server(WORKFLOWS[:served], "workflows") as flows:
        hook = hook_on(jobs, max_retries=2)
        with pytest.raises(MusicAIPagingError, match="repeats the previous page"):
            list(hook.list_jobs(page_size=20))
        with pytest.raises(MusicAIPagingError, match="repeats the previous page"):
            arun(alisted(hook_on(jobs, conn_id="other", max_retries=2), 20))
        with pytest.raises(MusicAIPagingError, match="ignores the page parameter"):
            list(hook_on(flows, conn_id="flows", max_retries=2).list_workflows(page_size=20))
        assert len(jobs.requests) <= 8  # two listings, each stopped at its third repeat


def test_a_listing_shifted_by_one_page_meanwhile_is_neither_an_error_nor_listed_twice(
    hook_on: HookOn,
) -> None:
    """Newest first, exactly one page of jobs created between two requests: page 1 comes back as
    page 0 did (seen under load by the load suite). The listing goes on and lists each job once."""
    older = JOBS[:10]
    served: dict[int, list[dict[str, Any]]] = {0: older[:5], 1: older[:5], 2: older[5:]}

    def shifting(request: Request) -> Reply:
        page = int(request.param("page") or 0)
        return Reply(200, json_body={"jobs": served.get(page, [])})

    with HostileServer(shifting) as server:
        hook = hook_on(server, max_retries=2)
        listed = [job["id"] for job in hook.list_jobs(page_size=5)]
        alisted_ids = arun(alisted(hook_on(server, conn_id="other", max_retries=2), 5))
    assert listed == alisted_ids == [job["id"] for job in older]


def test_a_listing_longer_than_max_pages_is_a_typed_error_naming_the_cap(
    hook_on: HookOn,
) -> None:
    def endless(request: Request) -> Reply:
        page = int(request.param("page") or 0)
        return Reply(
            200, json_body={"jobs": [{"id": f"job-{page}-{n}", "status": "QUEUED"} for n in range(3)]}
        )

    with HostileServer(endless) as server:
        hook = hook_on(server, max_retries=2, max_pages=5)
        with pytest.raises(MusicAIPagingError, match="max_pages=5"):
            list(hook.list_jobs(page_size=3))
        assert len(server.requests) == 5
        with pytest.raises(MusicAIPagingError, match="max_pages=5"):
            arun(alisted(hook_on(server, conn_id="other", max_retries=2, max_pages=5), 3))


class JobsAPI:
    """POST /job records the job and loses the answer; GET /job lists it among others, 7 a page."""

    def __init__(self, *, repeat_pages: bool = False) -> None:
        self.jobs: list[dict[str, Any]] = [dict(job) for job in JOBS[:20]]
        self.repeat_pages = repeat_pages
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        import json

        if request.method == "POST":
            body = json.loads(request.body)
            with self.lock:
                job = {"id": f"new-{len(self.jobs)}", "status": "QUEUED", "metadata": body["metadata"]}
                self.jobs.append(job)
            return Reply(drop=True)
        if self.repeat_pages:
            return Reply(200, json_body={"jobs": self.jobs[:7]})
        return Reply(200, json_body={"jobs": paged(self.jobs, request, served_size=7)})


def test_the_lookup_after_a_lost_post_answer_pages_past_a_cap_no_duplicate(
    hook_on: HookOn,
) -> None:
    api = JobsAPI()
    with HostileServer(api) as server:
        hook = hook_on(server, max_retries=2)
        job_id = hook.create_job(
            "song", "wf", {"inputUrl": "https://example.com/a.wav"}, idempotency_key="k-1"
        )
        assert job_id == "new-20"
        assert len(server.requests_to("POST")) == 1
        assert [job["metadata"][IDEMPOTENCY_METADATA_KEY] for job in api.jobs[20:]] == ["k-1"]


def test_an_endless_lookup_fails_typed_without_sending_again(hook_on: HookOn) -> None:
    with HostileServer(JobsAPI(repeat_pages=True)) as server:
        hook = hook_on(server, max_retries=2)
        with pytest.raises(MusicAIError, match=r"could not be checked.*repeats the previous page"):
            hook.create_job("song", "wf", {"inputUrl": "https://example.com/a.wav"}, idempotency_key="k-2")
        assert len(server.requests_to("POST")) == 1
