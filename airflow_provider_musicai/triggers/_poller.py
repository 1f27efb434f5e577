"""One poller per triggerer process and connection, shared by every trigger that waits on a job.

Polling each job costs one request per job per interval: 1,000 jobs, 1,000 requests every cycle.
The shared poller instead asks the list endpoint which jobs are still QUEUED or STARTED (one
request per 100 jobs, filtered by the workflows being waited on). The jobs that left that set are
then looked up in the listing of *finished* jobs (``GET /job?status=SUCCEEDED&status=FAILED``,
filtered by their workflows and, when all of them name one, their batch): a page hands over up to
100 final documents at once, ``result`` included. Only what those pages did not show is read on its
own (``GET /job/{id}``): a burst of 10,000 finished jobs costs about 100 pages, not 10,000 reads.

The walk through the finished listing is bounded whatever the account keeps: it stops once every
job looked for was found, once its pages outnumber the jobs it found plus :data:`SPARE_PAGES` plus
a tenth of those never listed active (a cycle never costs more than 1.1 times the single reads it
replaces, plus two requests; a job deep in a history of 100,000 costs two pages more than its
read), and, where the listing is seen newest first by ``createdAt`` (within :data:`ORDER_SLACK`),
once it is past the oldest job looked for. A listing seen out of order is not walked again (one
warning): single reads from then on. A job listed active before and shown by neither listing now
(most likely skipped by a page shift) waits one cycle before its single read; when more jobs are
due a single read than the active listing has pages, the active listing is read once more first.

It stays correct when pages shift between requests (a job missing from both listings is confirmed
individually before anything is reported; a deleted one is an error for its waiters), when a
listing ignores its filters (a listed job's own status, id, workflow and batch decide: a finished
job in the "active" listing is confirmed, an active one in the "finished" listing stays waited on,
another workflow's document is not taken), when a trigger is cancelled (its waiter is removed; the
poller stops when none is left) and when the triggerer restarts (triggers register again with a
fresh poller).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_musicai import metrics
from airflow_provider_musicai.common import DEFAULT_POLLER_LOG_INTERVAL
from airflow_provider_musicai.exceptions import MusicAIAuthError, MusicAIError
from airflow_provider_musicai.hooks._transport import of_running_loop
from airflow_provider_musicai.hooks.musicai import MusicAIHook, is_transient
from airflow_provider_musicai.jobs import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    is_active,
    listed_as_asked,
    workflow_slug,
)
from airflow_provider_musicai.triggers._job_feed import FINISHED, aclosing, instant

log = logging.getLogger(__name__)

#: Individual job fetches in flight at once during a cycle (bounded by the connection pool anyway).
CONFIRM_CONCURRENCY = 10

#: Cycles whose request counts a poller keeps (for benchmarks): bounded, as a triggerer runs for weeks.
KEPT_CYCLES = 10_000

#: Pages a walk through the finished listing may read beyond one per job it found and one per ten
#: jobs it still looks for (what it does not find is read singly).
SPARE_PAGES = 2

#: How far a listing "newest first" may list a job created later after an earlier one: jobs created
#: by concurrent requests can be stored in another order than their ``createdAt`` stamps (the
#: emulator, under load, by seconds). A larger step up is a listing out of order. The order only
#: lets a walk stop early; the page budget bounds it anyway, so the slack may be generous.
ORDER_SLACK = timedelta(seconds=60)


#: The fields of an active job's listed document that the poller keeps for the rest of a cycle.
_ACTIVE_FIELDS = ("status", "batchName", "createdAt")


@dataclass(eq=False)
class _Waiter:
    job_id: str
    workflow: str | None
    future: asyncio.Future[dict[str, Any]]
    statuses: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    last_status: str | None = None
    failures: int = 0
    #: The job's ``batchName`` and ``createdAt`` as its last listed document told (None: unknown).
    batch: str | None = None
    created: datetime | None = None
    #: Listed active at some cycle; missing from both listings at the last one (see _cycle).
    listed_active: bool = False
    missed: bool = False


@dataclass
class PollerStats:
    """What a poller did, for logs and benchmarks."""

    cycles: int = 0
    list_requests: int = 0
    job_requests: int = 0
    failures: int = 0
    #: Final documents handed over, and how many of them came from a page of finished jobs.
    finished: int = 0
    finished_from_pages: int = 0
    requests_per_cycle: deque[int] = field(default_factory=lambda: deque(maxlen=KEPT_CYCLES))


@dataclass
class _Window:
    """What a poller did since its last summary line."""

    started: float
    cycles: int = 0
    list_requests: int = 0
    job_requests: int = 0
    busiest_cycle: int = 0


class SharedJobPoller:
    """Waits on many jobs of one connection with a few list requests per cycle."""

    def __init__(
        self,
        hook: MusicAIHook,
        poll_interval: float,
        *,
        page_size: int = 100,
        max_consecutive_failures: int = 10,
        log_interval: float = DEFAULT_POLLER_LOG_INTERVAL,
        name: str = "",
    ) -> None:
        """``log_interval``: seconds between summary lines (waits, cycles, requests) at INFO, so an
        operator can read each triggerer's load on Music AI from its log; 0 or less: none.
        ``name`` says which poller in those lines (the connection id)."""
        self.hook = hook
        self.poll_interval = poll_interval
        self.page_size = page_size
        self.max_consecutive_failures = max_consecutive_failures
        self.log_interval = log_interval
        self.name = name
        self.stats = PollerStats()
        self._window: _Window | None = None
        self._waiters: dict[str, list[_Waiter]] = {}
        self._task: asyncio.Task[None] | None = None
        #: False once the finished listing was seen not newest first: no more walks, single reads.
        self.ordered = True

    @property
    def waiting(self) -> int:
        """How many jobs are being waited on."""
        return len(self._waiters)

    async def wait(
        self, job_id: str, workflow: str | None = None, on_status: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """Return ``job_id``'s final document (SUCCEEDED or FAILED) once the poller sees it.

        ``on_status`` is called with each new status, in the caller's task (so that a trigger's
        log lines land in its own task log). Raises what made the wait impossible (the job was
        deleted, the key was revoked, too many consecutive failures). Cancelling the caller only
        removes its own waiter.
        """
        loop = asyncio.get_running_loop()
        waiter = _Waiter(job_id, workflow, loop.create_future())
        self._waiters.setdefault(job_id, []).append(waiter)
        if self._task is None or self._task.done():
            # A context of its own: the poller must not inherit (and log as) the first trigger.
            self._task = contextvars.Context().run(loop.create_task, self._run())
        try:
            while not waiter.future.done():
                next_status = asyncio.ensure_future(waiter.statuses.get())
                pending: set[asyncio.Future[Any]] = {waiter.future, next_status}
                try:
                    await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    next_status.cancel()
                if next_status.done() and not next_status.cancelled() and on_status is not None:
                    on_status(next_status.result())
            while on_status is not None and not waiter.statuses.empty():
                on_status(waiter.statuses.get_nowait())
            return waiter.future.result()
        finally:
            self._forget(waiter)

    def _forget(self, waiter: _Waiter) -> None:
        waiters = self._waiters.get(waiter.job_id, [])
        if waiter in waiters:
            waiters.remove(waiter)
        if not waiters:
            self._waiters.pop(waiter.job_id, None)
        if not waiter.future.done():
            waiter.future.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        self._window = self._new_window(loop.time())
        while self._all_waiters():
            started = loop.time()
            try:
                await self._cycle()
            except MusicAIError as error:
                self.stats.failures += 1
                log.warning("Listing the active Music AI jobs failed: %s", error)
                if isinstance(error, MusicAIAuthError):
                    self._fail(self._all_waiters(), error)  # the key is refused: no wait can go on
                else:
                    # An unreadable, endless or refused listing says nothing about any one job:
                    # it counts toward each waiter's cap instead of failing them all at once.
                    self._count_failure(self._all_waiters(), error)
            self._summarize(loop.time())
            if self._all_waiters():
                await asyncio.sleep(self.pause_after(loop.time() - started))
        self._window = None

    def _summarize(self, now: float) -> None:
        """Log one line about the cycles since the last line, once ``log_interval`` has passed."""
        window = self._window
        if self.log_interval <= 0 or window is None or now - window.started < self.log_interval:
            return
        stats = self.stats
        cycles = stats.cycles - window.cycles
        lists = stats.list_requests - window.list_requests
        reads = stats.job_requests - window.job_requests
        log.info(
            "Music AI poller %s (every %gs): waiting on %d job(s); last %.1fs: %d cycle(s), "
            "%d request(s) (%d listing page(s), %d job read(s)), at most %d in one cycle",
            self.name or "-",
            self.poll_interval,
            len(self._waiters),
            now - window.started,
            cycles,
            lists + reads,
            lists,
            reads,
            window.busiest_cycle,
        )
        self._window = self._new_window(now)

    def _new_window(self, now: float) -> _Window:
        return _Window(now, self.stats.cycles, self.stats.list_requests, self.stats.job_requests)

    def _count_failure(self, waiters: list[_Waiter], error: MusicAIError) -> None:
        """A transient failure for these waiters; one that reaches the cap fails its wait."""
        for waiter in waiters:
            waiter.failures += 1
            if waiter.failures >= self.max_consecutive_failures:
                self._fail(
                    [waiter],
                    MusicAIError(
                        f"Music AI job {waiter.job_id} could not be polled {waiter.failures} times in a row; "
                        f"last error: {error}"
                    ),
                )

    def pause_after(self, elapsed: float) -> float:
        """Seconds to sleep after a cycle that took ``elapsed``: a cycle starts every poll interval,
        so a finished job is seen at most one interval later however long confirmations take."""
        return max(0.0, self.poll_interval - elapsed)

    async def _cycle(self) -> None:
        requests_before = self.stats.list_requests + self.stats.job_requests
        # A job whose workflow is unknown (a sensor on a job made elsewhere) is fetched directly;
        # its document tells the workflow, so from then on the listing covers it.
        unknown = {w.job_id for w in self._all_waiters() if w.workflow is None}
        await self._confirm(unknown)
        workflows = sorted({w.workflow for w in self._all_waiters() if w.workflow})
        pages_before = self.stats.list_requests
        active = await self._active_jobs(workflows) if workflows else {}
        active_pages = self.stats.list_requests - pages_before
        for waiter in self._all_waiters():
            if waiter.job_id in active:
                self._take_active(waiter, active[waiter.job_id])
        left = {w.job_id for w in self._all_waiters() if w.job_id not in active} - unknown
        if left and self.ordered:
            # The jobs listed active are looked for too (never read singly): those that finished
            # after their page was read are on the same first pages, and are handed over a cycle
            # earlier than the next active listing would allow.
            listed = {w.job_id for w in self._all_waiters() if w.job_id in active}
            unseen = left - await self._walk_finished(left | listed)
            # A job listed active before and in neither listing now was most likely skipped by a
            # page shift (jobs finishing while the active listing is read move the later pages up):
            # it gets one more cycle before its single read. A burst of thousands finishing while
            # 100 pages are read would otherwise cost a single read per skipped job.
            to_read = {job_id for job_id in unseen if not self._miss_once(job_id)}
            if len(to_read) > active_pages + SPARE_PAGES:
                # More jobs to read than the active listing has pages: it is cheaper to list them
                # again (a burst finishing in any order while the pages are read skips thousands).
                again = await self._active_jobs(workflows)
                for waiter in self._all_waiters():
                    if waiter.job_id in to_read and waiter.job_id in again:
                        self._take_active(waiter, again[waiter.job_id])
                to_read -= again.keys()
            await self._confirm(to_read)
        else:
            await self._confirm(left)
        requests = self.stats.list_requests + self.stats.job_requests - requests_before
        self.stats.cycles += 1
        self.stats.requests_per_cycle.append(requests)
        metrics.poller_cycle(requests, len(self._waiters))
        if self._window is not None:
            self._window.busiest_cycle = max(self._window.busiest_cycle, requests)

    def _all_waiters(self) -> list[_Waiter]:
        """The waiters still waiting (a handed-over one stays registered until its caller runs)."""
        return [waiter for group in self._waiters.values() for waiter in group if not waiter.future.done()]

    async def _active_jobs(self, workflows: list[str]) -> dict[str, dict[str, Any]]:
        """``{job id: document}`` of the QUEUED or STARTED jobs of these workflows.

        Each job's own status decides: a listing that ignores the status filter and lists a
        finished job leaves it out of this set, so it is confirmed and handed over like any other.
        """
        active: dict[str, dict[str, Any]] = {}
        async for page in self.hook.alist_job_pages(
            status=sorted(ACTIVE_STATUSES), workflow=workflows, page_size=self.page_size
        ):
            self.stats.list_requests += 1
            for job in page:
                if is_active(job):
                    # Only what _take_active reads: 10,000 whole documents would be kept a cycle.
                    active[str(job.get("id"))] = {key: job.get(key) for key in _ACTIVE_FIELDS}
        return active

    def _take_active(self, waiter: _Waiter, job: dict[str, Any]) -> None:
        """Note what an active job's listed document tells (status, batch, creation time)."""
        waiter.failures = 0
        waiter.listed_active, waiter.missed = True, False
        batch = job.get("batchName")
        waiter.batch = batch if isinstance(batch, str) and batch else None
        waiter.created = instant(job.get("createdAt")) or waiter.created
        self._observe(waiter, str(job.get("status")))

    async def _walk_finished(self, job_ids: set[str]) -> set[str]:
        """Look for ``job_ids`` in the finished listing, newest first; the ids it settled.

        A listed document settles its job only if its own fields say so: a final status (handed
        over) or an active one (still waited on), its id, and the workflow and batch asked for.
        The walk is bounded (see the module); what it did not settle is read singly by the caller.
        """
        waiters = [group[0] for job_id in job_ids if (group := self._waiters.get(job_id))]
        workflows = sorted({w.workflow for w in waiters if w.workflow})
        batches = {w.batch for w in waiters}
        batch = next(iter(batches)) if len(batches) == 1 else None
        remaining = {w.job_id: w for w in waiters}
        never_active = sum(not w.listed_active for w in waiters)
        found = seen = 0
        listed: set[str] = set()
        previous: datetime | None = None  # the last creation stamp listed
        lowest: datetime | None = None  # the oldest one
        descending = False
        pages = self.hook.alist_job_pages(
            status=list(FINISHED), workflow=workflows, batch_name=batch, page_size=self.page_size
        )
        try:
            async for page in pages:
                self.stats.list_requests += 1
                seen += 1
                for job in page:
                    job_id = str(job.get("id"))
                    created = instant(job.get("createdAt"))
                    # A job listed twice was pushed onto the next page by a shift: not an order.
                    if job_id not in listed and created is not None:
                        if previous is not None and created > previous + ORDER_SLACK:
                            self._disordered(job)
                        descending = descending or (previous is not None and created < previous)
                        previous = created
                        lowest = created if lowest is None else min(lowest, created)
                    listed.add(job_id)
                    waiter = remaining.get(job_id)
                    if waiter is not None and self._take_listed(waiter, job, batch):
                        del remaining[job_id]
                        found += 1
                        never_active -= not waiter.listed_active
                if (
                    not self.ordered
                    or not remaining
                    or seen >= found + SPARE_PAGES + never_active // 10
                    or (descending and self._past_all(lowest, remaining.values()))
                ):
                    break
        finally:
            await aclosing(pages)
        log.debug(
            "Music AI poller %s: %d finished page(s) handed over %d of %d job(s) looked for",
            self.name or "-",
            seen,
            found,
            len(waiters),
        )
        return set(job_ids) - remaining.keys()

    def _take_listed(self, waiter: _Waiter, job: dict[str, Any], batch: str | None) -> bool:
        """Settle ``waiter``'s job from its document in the finished listing, if the document's
        own fields allow it; False leaves the job to a single read."""
        if not listed_as_asked(job, workflow=waiter.workflow, batch_name=batch):
            return False
        status = job.get("status")
        if status in TERMINAL_STATUSES:
            before = self.stats.finished
            self._resolve(waiter.job_id, job)
            self.stats.finished_from_pages += self.stats.finished - before
            return True
        if is_active(job):  # the listing ignored its status filter: the job's own status decides
            for each in self._waiters.get(waiter.job_id, []):
                self._take_active(each, job)
            return True
        return False

    def _miss_once(self, job_id: str) -> bool:
        """Whether ``job_id``'s single read waits a cycle: it was listed active before and this is
        the first cycle in a row that neither listing showed it."""
        waiters = [w for w in self._waiters.get(job_id, []) if not w.future.done()]
        if not any(w.listed_active and not w.missed for w in waiters):
            return False
        for waiter in waiters:
            waiter.missed = True
        return True

    @staticmethod
    def _past_all(created: datetime | None, waiters: Iterable[_Waiter]) -> bool:
        """Whether a newest-first walk down to ``created`` is past every job still looked for."""
        stamps = [w.created for w in waiters]
        return created is not None and all(
            stamp is not None and created < stamp - ORDER_SLACK for stamp in stamps
        )

    def _disordered(self, job: dict[str, Any]) -> None:
        if self.ordered:
            self.ordered = False
            log.warning(
                "Music AI: GET /job does not list jobs newest first by createdAt (job %s, createdAt %r): "
                "the shared poller confirms finished jobs one GET /job/{id} each from now on",
                job.get("id"),
                job.get("createdAt"),
            )

    async def _confirm(self, job_ids: set[str]) -> None:
        if not job_ids:
            return
        gate = asyncio.Semaphore(CONFIRM_CONCURRENCY)

        async def confirm(job_id: str) -> None:
            async with gate:
                self.stats.job_requests += 1
                try:
                    job = await self.hook.aget_job(job_id)
                except MusicAIError as error:
                    waiters = list(self._waiters.get(job_id, []))
                    if is_transient(error):
                        log.warning("Could not read job %s (%s); will try again next cycle", job_id, error)
                        self._count_failure(waiters, error)
                    else:
                        self._fail(waiters, error)
                    return
                self._resolve(job_id, job)

        await asyncio.gather(*(confirm(job_id) for job_id in sorted(job_ids)))

    def _resolve(self, job_id: str, job: dict[str, Any]) -> None:
        status = str(job.get("status"))
        waiters = [waiter for waiter in self._waiters.get(job_id, []) if not waiter.future.done()]
        if waiters and status in TERMINAL_STATUSES:
            metrics.job_finished(job)
            self.stats.finished += len(waiters)
        for waiter in waiters:
            waiter.failures = 0
            waiter.workflow = waiter.workflow or workflow_slug(job)
            self._observe(waiter, status)
            if status in TERMINAL_STATUSES:
                waiter.future.set_result(job)

    @staticmethod
    def _observe(waiter: _Waiter, status: str) -> None:
        """Queue ``status`` for the waiter's caller if it changed."""
        if status != waiter.last_status:
            waiter.statuses.put_nowait(status)
            waiter.last_status = status

    @staticmethod
    def _fail(waiters: list[_Waiter], error: BaseException) -> None:
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_exception(error)


_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, float, int], SharedJobPoller]]
_POLLERS = weakref.WeakKeyDictionary()


def shared_poller(conn_id: str, poll_interval: float, max_consecutive_failures: int = 10) -> SharedJobPoller:
    """The running loop's poller for these settings, created on first use."""
    pollers = of_running_loop(_POLLERS)
    key = (conn_id, float(poll_interval), int(max_consecutive_failures))
    poller = pollers.get(key)
    if poller is None:
        poller = pollers[key] = SharedJobPoller(
            MusicAIHook(musicai_conn_id=conn_id),
            poll_interval,
            max_consecutive_failures=max_consecutive_failures,
            log_interval=configured_log_interval(),
            name=conn_id,
        )
    return poller


def configured_log_interval() -> float:
    """``[musicai] poller_log_interval`` (``AIRFLOW__MUSICAI__POLLER_LOG_INTERVAL``) in seconds."""
    from airflow.configuration import conf

    return conf.getfloat("musicai", "poller_log_interval", fallback=DEFAULT_POLLER_LOG_INTERVAL)
