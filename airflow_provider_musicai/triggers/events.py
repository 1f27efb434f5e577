"""``MusicAIJobEventTrigger``: start DAG runs when Music AI jobs finish (Airflow 3 asset watchers).

    Asset("musicai-batch", watchers=[AssetWatcher(name="batch", trigger=MusicAIJobEventTrigger(
        workflow="music-ai/stems-vocals-accompaniment", batch_name="nightly"))])

Each poll reads the jobs that finished since the previous polls at a few requests, whatever the
account keeps (the active jobs, the jobs that left them, and the newest page of finished jobs: see
:mod:`~airflow_provider_musicai.triggers._job_feed`); each trigger keeps the jobs that match its
filters and fires one event per job past its *watermark*: the latest ``completedAt`` it has fired
plus the ids fired at that instant. The watermark is kept in the watched asset's state
store (Airflow 3.3+, so it survives triggerer restarts) and in memory, so a job fires once per
watcher. On first start a watcher fires only for jobs that finish from then on, unless ``since``
(an ISO timestamp) asks for older ones. Jobs that finish while no triggerer runs fire when it is
back, as long as the API still lists them (until they are deleted): the first polls after a start
read the whole finished listing.

A listing is trusted for nothing it was asked: each job's own status, workflow, batch and metadata
decide whether it matches, and its ``completedAt`` moves the watermark only if it is not ahead of
this machine's clock by more than :data:`~airflow_provider_musicai.timestamps.CLOCK_SKEW_ALLOWANCE`. A
job stamped further ahead (a server bug: ``2099-...``) still fires, once: its id is kept under the
watermark's ``ahead`` until the watermark passes its stamp, instead of the watermark jumping there
and silencing every job that finishes before it.

On Airflow 3.3+, watchers of one connection and poll interval share one poll through the
triggerer's shared streams (``shared_stream_key``); each filters the shared listing itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Hashable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from airflow.triggers.base import TriggerEvent

try:
    from airflow.triggers.base import BaseEventTrigger
except ImportError as error:  # Airflow 2: no asset watchers
    from airflow import __version__ as _airflow_version

    raise ImportError(
        "MusicAIJobEventTrigger needs Airflow 3.1 or later (it runs in an asset watcher, which Airflow 2 "
        f"does not have); this is Airflow {_airflow_version}. On Airflow 2, wait on known jobs with "
        "MusicAIJobSensor or deferrable MusicAICreateJobOperator instead."
    ) from error

from airflow_provider_musicai.common import DEFAULT_CONN_ID, ahead_of_clock, printable
from airflow_provider_musicai.jobs import workflow_slug
from airflow_provider_musicai.triggers._job_feed import FinishedJobFeed
from airflow_provider_musicai.triggers._job_feed import instant as _instant

WATERMARK_KEY = "musicai_job_event_watermark"
FINISHED = ("SUCCEEDED", "FAILED")


#: The envelope of Airflow's serialization ({"__var": value, "__type": "dict"}), as Airflow 3.2 hands
#: an asset watcher's nested kwargs to the trigger still wrapped, and with its keys written as the
#: ``Encoding`` enum's names ("Encoding.VAR", "Encoding.TYPE").
_ENVELOPES = (("__var", "__type"), ("Encoding.VAR", "Encoding.TYPE"))


def airflow_decoded(value: Any) -> Any:
    """``value`` without the serialization envelopes that Airflow 3.2 leaves on an asset watcher's
    dict kwargs (a metadata filter arrived as ``{"Encoding.VAR": {...}, "Encoding.TYPE": "dict"}``
    and matched no job); plain values pass unchanged."""
    if isinstance(value, Mapping):
        for var, kind in _ENVELOPES:
            if set(value) == {var, kind} and value[kind] == "dict":
                return airflow_decoded(value[var])
        return {key: airflow_decoded(item) for key, item in value.items()}
    return value


def _utc_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class MusicAIJobEventTrigger(BaseEventTrigger):
    """Fire one event per Music AI job that reaches one of ``statuses``, for asset watchers.

    :param workflow: only jobs of this workflow slug (None: any).
    :param batch_name: only jobs of this batch (None: any).
    :param metadata: only jobs whose metadata contains these key/values.
    :param statuses: final statuses that fire (``SUCCEEDED``, ``FAILED``).
    :param since: ISO timestamp: also fire for jobs completed after it on first start (default:
        only jobs completing from the first poll on).
    :param poll_interval: seconds between two listings.
    :param musicai_conn_id: Airflow connection of type ``musicai``.

    The event payload (the asset event's extra): ``job_id``, ``status``, ``workflow``, ``name``,
    ``batch_name``, ``metadata``, ``completed_at`` and ``result``, whose URLs are
    ``musicai-result://`` references (resolve them with the hook), never signed URLs.
    """

    def __init__(
        self,
        *,
        workflow: str | None = None,
        batch_name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        statuses: Iterable[str] = ("SUCCEEDED",),
        since: str | None = None,
        poll_interval: float = 30.0,
        musicai_conn_id: str = DEFAULT_CONN_ID,
        watermark: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.workflow = workflow
        self.batch_name = batch_name
        self.metadata = dict(airflow_decoded(metadata) or {})
        self.statuses = tuple(sorted({str(status).upper() for status in statuses}))
        unknown = set(self.statuses) - set(FINISHED)
        if not self.statuses or unknown:
            raise ValueError(f"statuses must be among {FINISHED}, got {sorted(unknown) or 'none'}")
        if since is not None and _instant(since) is None:
            raise ValueError(f"since must be an ISO timestamp, got {since!r}")
        self.since = since
        self.poll_interval = float(poll_interval)
        self.musicai_conn_id = musicai_conn_id
        self.watermark: dict[str, Any] | None = dict(airflow_decoded(watermark)) if watermark else None
        self._workflow_id: str | None = None
        self._workflow_id_looked_up = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # The watermark is runtime state, kept out of the kwargs: they identify the watcher.
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "workflow": self.workflow,
                "batch_name": self.batch_name,
                "metadata": self.metadata,
                "statuses": list(self.statuses),
                "since": self.since,
                "poll_interval": self.poll_interval,
                "musicai_conn_id": self.musicai_conn_id,
            },
        )

    # -- what matches, and what is new ----------------------------------------------------------

    def matches(self, job: Mapping[str, Any]) -> bool:
        """Whether ``job`` is one this trigger reports (status, workflow, batch, metadata)."""
        if job.get("status") not in self.statuses:
            return False
        if self.workflow is not None and not self._of_workflow(job):
            return False
        if self.batch_name is not None and job.get("batchName") != self.batch_name:
            return False
        metadata = job.get("metadata") or {}
        return all(metadata.get(key) == value for key, value in self.metadata.items())

    def _of_workflow(self, job: Mapping[str, Any]) -> bool:
        slug = workflow_slug(job)
        if slug is not None:
            return slug == self.workflow
        # The older ``{"id", "name"}`` form names no slug: compare ids (the slug's id from GET /workflow).
        ref = job.get("workflow")
        known = self._workflow_id is not None
        return known and isinstance(ref, Mapping) and ref.get("id") == self._workflow_id

    async def _learn_workflow_id(self, jobs: Iterable[Mapping[str, Any]]) -> None:
        """Look up the id of ``workflow`` once, when the API sends workflows as ``{"id", "name"}``."""
        if self.workflow is None or self._workflow_id_looked_up:
            return
        if not any(isinstance(job.get("workflow"), Mapping) for job in jobs):
            return
        from airflow_provider_musicai.hooks.musicai import MusicAIHook

        async for workflow in MusicAIHook(musicai_conn_id=self.musicai_conn_id).alist_workflows():
            if workflow.get("slug") == self.workflow:
                self._workflow_id = str(workflow.get("id"))
                break
        self._workflow_id_looked_up = True  # after a whole listing: a failed one is tried again
        if self._workflow_id is None:
            self.log.warning(
                "Music AI: the API names jobs' workflows by {id, name} and GET /workflow does not list "
                "%r: no job can be matched to it",
                self.workflow,
            )

    def new_jobs(self, jobs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The matching jobs past the watermark and not fired ahead of it, oldest first
        (``completedAt``, then id)."""
        assert self.watermark is not None
        mark = _instant(self.watermark.get("completed_at"))
        seen = set(self.watermark.get("ids") or ())
        ahead = self.watermark.get("ahead") or {}
        fresh: list[tuple[datetime, str, Mapping[str, Any]]] = []
        for job in jobs:
            done = _instant(job.get("completedAt"))
            job_id = str(job.get("id"))
            if done is None or job_id in ahead or not self.matches(job):
                continue
            if mark is not None and (done < mark or (done == mark and job_id in seen)):
                continue
            fresh.append((done, job_id, job))
        fresh.sort(key=lambda item: (item[0], item[1]))
        return [job for _, _, job in fresh]

    def advance(self, job: Mapping[str, Any]) -> None:
        """Record ``job`` (one of :meth:`new_jobs`, taken in order) as fired: move the watermark
        to its ``completedAt``, or, for a stamp ahead of the clock plus the skew allowance, keep
        its id under ``ahead`` and leave the watermark where it is."""
        assert self.watermark is not None
        done = _instant(job.get("completedAt"))
        assert done is not None
        job_id = str(job.get("id"))
        # The API's own stamp, kept as sent: re-formatting could round it below the job's instant.
        stamp = str(job.get("completedAt"))
        ahead = dict(self.watermark.get("ahead") or {})
        if ahead_of_clock(done):
            self.log.warning(
                "Music AI job %s says it completed at %s, ahead of this machine's clock by more than "
                "the allowed skew: it fires, but does not move the watermark",
                printable(job_id),
                printable(stamp),
            )
            self.watermark = {**self.watermark, "ahead": {**ahead, job_id: stamp}}
            return
        mark = _instant(self.watermark.get("completed_at"))
        ids = list(self.watermark.get("ids") or ()) if mark == done else []
        self.watermark = {"completed_at": stamp, "ids": sorted({*ids, job_id})}
        # An id fired ahead is needed only until the watermark passes its stamp.
        kept = {key: value for key, value in ahead.items() if (_instant(value) or done) >= done}
        if kept:
            self.watermark["ahead"] = kept

    @staticmethod
    def event_of(job: Mapping[str, Any]) -> TriggerEvent:
        """The event for one finished job: identity, status and result references only."""
        from airflow_provider_musicai.references import public_job_document

        public = public_job_document(job)
        return TriggerEvent(  # type: ignore[no-untyped-call]
            {
                "job_id": public.get("id"),
                "status": public.get("status"),
                "workflow": public.get("workflow"),
                "name": public.get("name"),
                "batch_name": public.get("batchName"),
                "metadata": public.get("metadata") or {},
                "completed_at": public.get("completedAt"),
                "result": public.get("result") or {},
            }
        )

    # -- watermark persistence --------------------------------------------------------------------

    async def _load_watermark(self) -> None:
        if self.watermark is not None:
            return
        stored = await self._store_call("aget", WATERMARK_KEY)
        if isinstance(stored, Mapping) and stored.get("completed_at"):
            self.watermark = self._checked(stored)
            if self.watermark != dict(stored):
                await self._save_watermark()
            return
        start = self.since or _utc_stamp(datetime.now(UTC))
        self.watermark = {"completed_at": start, "ids": []}
        await self._store_call("aset", WATERMARK_KEY, self.watermark)

    def _checked(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """``stored``, or, if a server's far-future stamp moved it there (before this check
        existed), a watermark back at now that keeps the ids fired at that stamp under ``ahead``."""
        mark = _instant(stored.get("completed_at"))
        if mark is None or not ahead_of_clock(mark):
            return dict(stored)
        stamp = str(stored.get("completed_at"))
        self.log.warning(
            "Music AI: the stored watermark %s is ahead of this machine's clock; moving it back to now",
            printable(stamp),
        )
        ahead = {**dict(stored.get("ahead") or {}), **dict.fromkeys(stored.get("ids") or (), stamp)}
        return {"completed_at": _utc_stamp(datetime.now(UTC)), "ids": [], "ahead": ahead}

    async def _save_watermark(self) -> None:
        await self._store_call("aset", WATERMARK_KEY, self.watermark)

    async def _store_call(self, method: str, *args: Any) -> Any:
        """The watched asset's state store (Airflow 3.3+), or nothing when there is none."""
        store = getattr(self, "asset_state_store", None)
        if store is None:
            self._say_in_memory_once("this Airflow has no asset state store, which came with Airflow 3.3")
            return None
        try:
            return await getattr(store, method)(*args)
        except Exception as exc:  # several assets, no store API, or the store unreachable
            self._say_in_memory_once(f"{type(exc).__name__}: {exc}")
            return None

    def _say_in_memory_once(self, why: str) -> None:
        """Tell the triggerer log, once per watcher, that a restart will not remember what fired."""
        if getattr(self, "_said_in_memory", False):
            return
        self._said_in_memory = True
        self.log.warning(
            "Music AI: the watcher's watermark is kept in memory only (%s): after a triggerer restart "
            "it starts again from `since` (or from now), so jobs may fire again or, without `since`, "
            "not at all if they finished while no triggerer ran",
            why,
        )

    # -- polling: alone (run) or shared (Airflow 3.3 shared streams) ------------------------------

    #: Shared-stream keys whose next poll must read the whole finished listing (a watcher joined).
    _full_listing_wanted: ClassVar[set[Hashable]] = set()

    @classmethod
    async def _polls(
        cls, conn_id: str, poll_interval: float, key: Hashable | None = None
    ) -> AsyncIterator[Any]:
        """One :class:`~._job_feed.Poll` per interval: the finished jobs new since the previous
        polls, or every finished job (``complete``) on the first polls and when a watcher asks."""
        from airflow_provider_musicai.hooks.musicai import MusicAIHook

        feed = FinishedJobFeed(MusicAIHook(musicai_conn_id=conn_id), cls._class_log())
        while True:
            if key is not None and key in cls._full_listing_wanted:
                cls._full_listing_wanted.discard(key)
                feed.request_full()
            yield await feed.poll()
            await asyncio.sleep(poll_interval)

    @classmethod
    def _class_log(cls) -> logging.Logger:
        return logging.getLogger(f"{cls.__module__}.{cls.__qualname__}")

    async def _fire(self, polls: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        await self._load_watermark()
        caught_up = False
        async for poll in polls:
            # Until a poll has read every finished job, one may be missing: the watermark must not
            # pass it. (A shared stream a watcher joins late is already past its first polls.)
            caught_up = caught_up or poll.complete
            if not caught_up:
                continue
            await self._learn_workflow_id(poll.jobs)
            for job in self.new_jobs(poll.jobs):
                # Stored before the event leaves: a restart never fires a job twice (a crash in
                # between loses at most that one event).
                self.advance(job)
                await self._save_watermark()
                self.log.info("Music AI job %s is %s: firing", job.get("id"), job.get("status"))
                yield self.event_of(job)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for event in self._fire(self._polls(self.musicai_conn_id, self.poll_interval)):
            yield event

    @staticmethod
    def _stream_key(conn_id: str, poll_interval: float) -> Hashable:
        return ("musicai-job-events", conn_id, float(poll_interval))

    def shared_stream_key(self) -> Hashable | None:
        return self._stream_key(self.musicai_conn_id, self.poll_interval)

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        # One feed of every finished job serves every watcher of the group, whatever its filters.
        conn_id, poll_interval = kwargs["musicai_conn_id"], float(kwargs["poll_interval"])
        async for poll in cls._polls(conn_id, poll_interval, cls._stream_key(conn_id, poll_interval)):
            yield poll

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        # A watcher joining a running stream needs one whole listing to catch up from its watermark.
        key = self.shared_stream_key()
        if key is not None:
            type(self)._full_listing_wanted.add(key)
        async for event in self._fire(shared_stream):
            yield event
