"""The finished jobs of one connection, poll after poll, for event watchers: a few requests per quiet poll.

Listing every finished job on every poll costs one request per 100 jobs the account keeps. Instead
each poll (after the first two) reads:

* the *active* jobs (``GET /job?status=QUEUED&status=STARTED``: few), and reads again, by
  ``GET /job/{id}``, each job that was active at the previous poll and is neither active nor
  finished in this poll's listings (404: deleted meanwhile, dropped);
* the newest pages of the *finished* listing, newest first, down to the first page that ends with
  a job created before the *cutoff*: for jobs created and finished between two polls.

The cutoff is the newest ``createdAt`` known before the active listing of the poll before last:
every job created after it was either listed active at a later poll or is on those pages. (One poll
back would do but for a job that pages shifting under the active listing skipped: two cover it.)
The listing's order is checked on the documents themselves: the walk stops early only after it has
seen creation dates decrease and never increase. A listing that is not newest first (the reference
says only "sorted by creation date") is read whole on every poll, with one warning.

The first two polls read the whole finished listing (nothing is known yet), and so does a poll a
newly subscribed watcher asks for (:meth:`FinishedJobFeed.request_full`): a watcher trusts a poll
for everything since its watermark only when :attr:`Poll.complete` is true.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from logging import Logger
from typing import TYPE_CHECKING, Any

from airflow_provider_musicai.exceptions import MusicAINotFoundError
from airflow_provider_musicai.jobs import ACTIVE_STATUSES, TERMINAL_STATUSES, is_active

if TYPE_CHECKING:
    from airflow_provider_musicai.hooks.musicai import MusicAIHook

FINISHED = tuple(sorted(TERMINAL_STATUSES, reverse=True))  # ("SUCCEEDED", "FAILED")
ACTIVE = tuple(sorted(ACTIVE_STATUSES))


def instant(stamp: Any) -> datetime | None:
    """An API timestamp as an aware datetime (a stamp without offset is UTC), or None."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def aclosing(pages: AsyncIterator[Any]) -> None:
    """Close a listing left before its end (its connection goes back to the pool)."""
    close = getattr(pages, "aclose", None)
    if close is not None:
        await close()


@dataclass
class Poll:
    """What one poll found: finished job documents (each id once) and whether they are *every*
    finished job of the account (a whole listing) or only those new since the previous polls."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False
    requests: int = 0


class FinishedJobFeed:
    """Polls one connection for finished jobs; keeps what bounds the next poll (see the module)."""

    def __init__(self, hook: MusicAIHook, log: Logger) -> None:
        self.hook = hook
        self.log = log
        #: Jobs active at the previous poll, by id (None before the first poll).
        self.active: dict[str, dict[str, Any]] | None = None
        #: Newest ``createdAt`` known before the active listing of each of the last two polls.
        self._marks: deque[datetime | None] = deque(maxlen=2)
        self._newest: datetime | None = None
        self._full_requested = False
        #: False once a listing was seen not newest first: every poll reads it whole from then on.
        self.ordered = True

    def request_full(self) -> None:
        """Make the next poll read the whole finished listing (a watcher just subscribed)."""
        self._full_requested = True

    async def poll(self) -> Poll:
        """One poll: the finished jobs new since the previous polls (or all of them)."""
        poll = Poll()
        full = self._full_requested or len(self._marks) < 2 or not self.ordered
        cutoff = None if full else self._marks[0]
        self._full_requested = False
        finished: dict[str, dict[str, Any]] = {}
        active: dict[str, dict[str, Any]] = {}
        if self.active is None:
            # First poll: nothing to follow yet. The whole finished listing first, so that what it
            # shows is known before the active listing (the cutoff of the third poll).
            poll.complete = await self._walk(None, active, finished, poll)
            self._marks.append(self._newest)
            await self._list_active(active, finished, poll)
        else:
            self._marks.append(self._newest)
            await self._list_active(active, finished, poll)
            poll.complete = await self._walk(cutoff, active, finished, poll)
            for job_id in self.active.keys() - active.keys() - finished.keys():
                await self._confirm(job_id, active, finished, poll)
        for job_id in finished:
            active.pop(job_id, None)
        self.active = active
        poll.jobs = list(finished.values())
        return poll

    async def _list_active(
        self, active: dict[str, dict[str, Any]], finished: dict[str, dict[str, Any]], poll: Poll
    ) -> None:
        async for page in self.hook.alist_job_pages(status=list(ACTIVE)):
            poll.requests += 1
            for job in page:
                self._sort(job, active, finished)

    async def _walk(
        self,
        cutoff: datetime | None,
        active: dict[str, dict[str, Any]],
        finished: dict[str, dict[str, Any]],
        poll: Poll,
    ) -> bool:
        """Read the finished listing newest first down to ``cutoff`` (None: whole); whether it was
        read whole. Jobs the listing calls finished but whose own status is active are followed."""
        previous: datetime | None = None
        descending = False
        pages = self.hook.alist_job_pages(status=list(FINISHED))
        try:
            async for page in pages:
                poll.requests += 1
                for job in page:
                    created = instant(job.get("createdAt"))
                    if created is None or (previous is not None and created > previous):
                        self._disordered(job)
                    elif previous is not None and created < previous:
                        descending = True
                    previous = created or previous
                    self._sort(job, active, finished)
                ordered_so_far = self.ordered and descending and bool(page)
                if cutoff is not None and previous is not None and ordered_so_far and previous < cutoff:
                    return False
        finally:
            await aclosing(pages)
        return True

    def _disordered(self, job: Mapping[str, Any]) -> None:
        if self.ordered:
            self.ordered = False
            self.log.warning(
                "Music AI: GET /job does not list jobs newest first by createdAt (job %s, createdAt "
                "%r): event watchers read the whole finished listing on every poll from now on",
                job.get("id"),
                job.get("createdAt"),
            )

    def _sort(
        self, job: dict[str, Any], active: dict[str, dict[str, Any]], finished: dict[str, dict[str, Any]]
    ) -> None:
        """File a listed job by its own status, whatever the listing was asked for."""
        created = instant(job.get("createdAt"))
        if created is not None and (self._newest is None or created > self._newest):
            self._newest = created
        job_id = str(job.get("id"))
        if job.get("status") in TERMINAL_STATUSES:
            finished.setdefault(job_id, job)
        elif is_active(job):
            active[job_id] = job

    async def _confirm(
        self, job_id: str, active: dict[str, dict[str, Any]], finished: dict[str, dict[str, Any]], poll: Poll
    ) -> None:
        """Read a job that left the active listing without showing up as finished."""
        poll.requests += 1
        try:
            job = await self.hook.aget_job(job_id)
        except MusicAINotFoundError:
            self.log.info("Music AI job %s was deleted before it could be read: not followed", job_id)
            return
        self._sort(job, active, finished)
