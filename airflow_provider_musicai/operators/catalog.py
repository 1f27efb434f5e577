"""Process a whole catalog in one task: one Music AI job per track, exactly once, at any size.

A mapped task per track stops scaling at ``[core] max_map_length`` (1,024) and costs a scheduler
row, a worker slot and a trigger per track. :class:`MusicAICatalogOperator` keeps the catalog in
one task instance: it uploads and creates jobs with bounded concurrency, keeps at most
``max_in_flight`` jobs running, and waits deferred on one trigger for the whole window
(:class:`~airflow_provider_musicai.triggers.catalog.MusicAICatalogTrigger`, through the
triggerer's shared poller), waking to record finished tracks and top the window up.

What survives a wake-up or a retry, and where:

* the manifest (JSON Lines parts, see :mod:`._catalog`): every finished track;
* the trigger's ``carry``, handed back in its event: the cursor in the sorted catalog (a count,
  and the name of the last track taken, from which the next wake-up resumes the walk), the counts
  and the in-flight window (``{job id: track}``, at most ``max_in_flight`` entries) - never the
  catalog itself;
* each job's idempotency key ``<task instance key>-t<track digest>``: a new try lists the
  workflow's jobs once, reattaches to the running ones and records the finished ones, so no track
  ever gets a second job; on Airflow 3.3 the task state store says whether that scan is needed;
* with ``incremental=True``, the processed-state across runs (:mod:`._state`, fingerprints from
  :mod:`._fingerprint`): the carry keeps only the byte offset of the walk in it and the
  fingerprints of the in-flight tracks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_musicai import metrics
from airflow_provider_musicai.common import DEFAULT_DEFERRAL_HOLD
from airflow_provider_musicai.exceptions import (
    MusicAICatalogFailedError,
    MusicAIConfigurationError,
    MusicAIError,
    MusicAIInputError,
)
from airflow_provider_musicai.lineage import record_asset_events
from airflow_provider_musicai.operators._catalog import (
    FinishedTracks,
    Manifest,
    Track,
    TrackStream,
    iter_tracks,
    join,
    names_connection,
    storage_path,
)
from airflow_provider_musicai.operators._catalog_run import CatalogRun, track_record
from airflow_provider_musicai.operators._fingerprint import _fs_and_path, content_identity, request_digest
from airflow_provider_musicai.operators._reattach import TaskIdentity
from airflow_provider_musicai.operators._state import CatalogState, now_iso
from airflow_provider_musicai.operators._task_state import TaskStateSlot
from airflow_provider_musicai.operators.musicai import _MusicAIOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_musicai.operators._state import StateReader

#: Key of the catalog run's record in Airflow 3.3's task state store.
STATE_STORE_KEY = "musicai_catalog"
#: The placeholder the ``workflow_params`` template puts each track's uploaded URL in.
SOURCE_PLACEHOLDER = "{source}"
#: Error codes of tracks that failed before a job existed.
BAD_SOURCE = "BAD_SOURCE"
#: Skipped tracks written to the manifest per part (a whole unchanged catalog is never held).
SKIPPED_PER_PART = 1000
#: Track names an Asset event lists of what changed (the manifest has every one).
CHANGED_NAMED = 1000


def place(template: Any, url: str) -> Any:
    """``template`` with every ``"{source}"`` string replaced by the track's URL."""
    if isinstance(template, str):
        return url if template == SOURCE_PLACEHOLDER else template
    if isinstance(template, Mapping):
        return {key: place(value, url) for key, value in template.items()}
    if isinstance(template, list):
        return [place(value, url) for value in template]
    return template


class MusicAICatalogOperator(_MusicAIOperator):
    """Run ``workflow`` on every track of a catalog, one job per track, in one task instance.

    Returns (XCom ``return_value``) a summary: ``{"total", "processed", "succeeded", "failed",
    "skipped", "removed", "manifest"}`` (skipped and removed: incremental runs); the per-track
    outcome is in the manifest, one JSON line per track:
    ``{"source", "job_id", "status", "outputs", "error"}`` (status SKIPPED or REMOVED too; outputs
    are downloaded paths, the ``copy_results_to`` folder, or ``musicai-result://`` references -
    never a signed URL).

    :param sources: a list of files (paths, fsspec URLs, ``ObjectStoragePath``), or a folder/prefix
        whose files (recursively, in sorted order; names starting with ``.`` or ``_`` skipped) are
        the catalog (templated). A URL naming a connection (``s3://conn_id@bucket/prefix``) is
        read through it, as an ``ObjectStoragePath``.
    :param workflow: the workflow slug (templated).
    :param workflow_params: the params template: every ``"{source}"`` value becomes the track's
        uploaded URL, e.g. ``{"inputUrl": "{source}"}`` (templated).
    :param destination: a folder to download each track's results into, ``<destination>/<track>/``
        (templated).
    :param copy_results_to: a folder under which Music AI itself writes each track's outputs,
        ``<copy_results_to>/<track>/`` (the hook's ``create_job(copy_results_to=...)``; templated).
    :param copy_outputs: the outputs written under each track's folder (a folder needs them named,
        as for ``MusicAICreateJobOperator``), e.g. ``["vocals", "accompaniments"]``.
    :param storage_conn_id: the connection that presigns ``copy_results_to`` when its URL names none.
    :param manifest: the manifest folder; defaults to ``<destination or copy_results_to>/
        _musicai_manifest/<dag>/<run>/<task>`` (templated).
    :param max_in_flight: jobs running at once (Music AI plans limit concurrent jobs).
    :param upload_concurrency: uploads (and job creations) at once.
    :param max_failed_fraction: the share of failed tracks the task tolerates (0: any failure
        fails the task, after every track was tried).
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poll_interval: seconds between two poll cycles.
    :param deferral_hold: seconds each deferral's trigger waits after it started before it may wake
        the task, even when jobs are already final: Airflow 3 fails a try whose trigger fires
        before the scheduler has processed the deferring worker's exit (apache/airflow#67287,
        #72716). 0 turns the hold off (Airflow without the race, ``dag.test()``).
    :param delete_on_kill: delete the running jobs when the task is killed.
    :param delete_after: delete each job once its outcome is recorded (and its results copied).
    :param incremental: process only the tracks that are new or changed since a run that succeeded
        for them, or whose request (workflow, params, destination, ``copy_results_to`` /
        ``copy_outputs``) changed, or that failed, or whose recorded outputs are gone; the others
        are recorded SKIPPED without any API call (see the incremental catalogs how-to).
    :param state: where an incremental run keeps its processed-state; defaults to
        ``<destination or copy_results_to>/_musicai_state/<dag>/<task>`` (templated).
    :param force: with ``incremental``, process these tracks even if unchanged: True (all), a glob
        (``"album1/*"``), a list of names or globs, or a comma-separated string of them (templated,
        e.g. ``"{{ params.force }}"`` from the trigger form).
    :param prune_removed: with ``incremental``, delete the outputs of tracks gone from the catalog
        (they are always reported; kept by default).
    :param lease_timeout: seconds after which an incremental run's lease, not renewed (a run
        whose worker died and that is not retried), is taken over by another run.
    :param musicai_conn_id: Airflow connection of type ``musicai``.
    """

    template_fields: Sequence[str] = (
        "sources",
        "workflow",
        "workflow_params",
        "destination",
        "copy_results_to",
        "manifest",
        "state",
        "force",
        "musicai_conn_id",
    )
    template_fields_renderers = {"workflow_params": "json"}
    ui_color = "#c89be8"
    #: The hook's line per upload and job at DEBUG: the run logs a line per batch instead.
    hook_item_log_level = logging.DEBUG

    def __init__(
        self,
        *,
        sources: Any,
        workflow: str,
        workflow_params: Mapping[str, Any] | None = None,
        destination: Any = None,
        copy_results_to: Any = None,
        copy_outputs: Sequence[str] | None = None,
        storage_conn_id: str | None = None,
        manifest: Any = None,
        max_in_flight: int = 50,
        upload_concurrency: int = 4,
        max_failed_fraction: float = 0.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        deferral_hold: float = DEFAULT_DEFERRAL_HOLD,
        delete_on_kill: bool = True,
        delete_after: bool = False,
        incremental: bool = False,
        state: Any = None,
        force: Any = False,
        prune_removed: bool = False,
        lease_timeout: float = 6 * 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sources = sources
        self.workflow = workflow
        self.workflow_params = dict(workflow_params or {"inputUrl": SOURCE_PLACEHOLDER})
        self.destination = destination
        self.copy_results_to = copy_results_to
        self.copy_outputs = copy_outputs
        self.storage_conn_id = storage_conn_id
        self.manifest = manifest
        self.max_in_flight = int(max_in_flight)
        self.upload_concurrency = int(upload_concurrency)
        self.max_failed_fraction = float(max_failed_fraction)
        self.deferrable = deferrable
        self.poll_interval = float(poll_interval)
        self.deferral_hold = float(deferral_hold)
        self.delete_on_kill = delete_on_kill
        self.delete_after = delete_after
        self.incremental = bool(incremental)
        self.state = state
        self.force = force
        self.prune_removed = bool(prune_removed)
        self.lease_timeout = float(lease_timeout)
        self.window: dict[str, str] = {}
        self._store: CatalogState | None = None
        self._holder_id = ""
        self._unchecked = False  # warned once that recorded outputs cannot be checked
        self._request_digest: str | None = None
        self._forced: bool | list[str] = False  # ``force``, parsed once rendered
        if self.max_in_flight < 1 or self.upload_concurrency < 1:
            raise ValueError("max_in_flight and upload_concurrency must be >= 1")
        if not 0.0 <= self.max_failed_fraction <= 1.0:
            raise ValueError(f"max_failed_fraction must be within [0, 1], got {max_failed_fraction}")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be > 0 seconds, got {poll_interval}")
        if self.deferral_hold < 0:
            raise ValueError(f"deferral_hold must be >= 0 seconds, got {deferral_hold}")

    # -- entry points -----------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        manifest = Manifest(self._manifest_folder(context))
        snapshot = None
        if self.incremental:
            self._forced = force_patterns(self.force)  # a malformed value fails before anything is done
            store = self._state_store(context)
            store.acquire(self._holder(context), self.lease_timeout)
            snapshot = store.compact()  # what earlier runs and tries recorded, merged and sorted
        run = self._resume(context, manifest)
        run.snapshot, run.offset = snapshot, 0
        return self._drive(context, manifest, run)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, state: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Wake-up after the trigger fired: record the finished jobs, top up, defer again or end."""
        if isinstance(event, Mapping) and state is None:
            state = event.get("carry")
        if not isinstance(event, Mapping) or not isinstance(state, Mapping):
            raise MusicAIError(
                f"Unexpected wake-up of the Music AI catalog run: state {type(state).__name__}, "
                f"event {event!r:.200}"
            )
        run = CatalogRun.from_carry(state)
        manifest = Manifest(self._manifest_folder(context))
        if self.incremental:  # renews the lease (or raises if another run took it over)
            self._forced = force_patterns(self.force)
            self._state_store(context).acquire(self._holder(context), self.lease_timeout)
        finished = event.get("finished") if isinstance(event.get("finished"), Mapping) else {}
        self._record(run, manifest, dict(finished or {}))
        if event.get("status") != "finished":
            self._save(context, run)
            raise MusicAIError(f"Waiting for the catalog's jobs failed: {event.get('message')}")
        return self._drive(context, manifest, run)

    def on_kill(self) -> None:
        """Delete the jobs still running when the task is killed on a worker."""
        if self.delete_on_kill:
            for job_id in list(self.window):
                if self._delete_quietly(job_id, "the task was killed", log_deletion=False):
                    metrics.job_deleted("kill")

    # -- the loop ---------------------------------------------------------------------------

    def _drive(self, context: Context, manifest: Manifest, run: CatalogRun) -> dict[str, Any]:
        # The catalog is streamed from the cursor: each call walks it again from the last track
        # taken (a carry without "after", from an earlier release, resumes by count), never holds it.
        tracks = TrackStream(self.sources, run.cursor, run.after)
        previous = self._state_reader(context, run)
        try:
            while True:
                if not tracks.exhausted and len(run.window) < self.max_in_flight:
                    self._save(context, run, creating=True)  # a crash now means: scan on the next try
                self._top_up(context, tracks, manifest, run, previous)
                self.window = dict(run.window)
                self._save(context, run)
                if not run.window:
                    if previous is not None:
                        self._removed(run, manifest, previous.rest())
                    return self._finish(context, run.cursor, manifest, run)  # cursor = total
                if self.deferrable:
                    self._defer(run)
                self._record(run, manifest, self._wait_here(run.window))
        finally:
            if previous is not None:
                previous.close()

    def _top_up(
        self,
        context: Context,
        tracks: TrackStream,
        manifest: Manifest,
        run: CatalogRun,
        previous: StateReader | None = None,
    ) -> None:
        """Upload and create jobs for the next tracks until ``max_in_flight`` jobs run; an
        incremental run records the unchanged tracks it passes as SKIPPED (no API call)."""
        identity = TaskIdentity.from_context(context)
        ahead = set(run.ahead)
        skipped: list[dict[str, Any]] = []
        refreshed: list[dict[str, Any]] = []
        gone: list[dict[str, Any]] = []  # state lines of tracks no longer in the catalog
        with ThreadPoolExecutor(self.upload_concurrency, thread_name_prefix="musicai-catalog") as pool:
            while not tracks.exhausted and len(run.window) < self.max_in_flight:
                batch: list[Track] = []
                while not tracks.exhausted and len(batch) + len(run.window) < self.max_in_flight:
                    track = tracks.take()
                    run.take(track.name)
                    line = None
                    if previous is not None:
                        line, passed = previous.lookup(track.name)
                        gone += passed
                    if track.name in ahead:
                        ahead.discard(track.name)
                    elif previous is None:
                        batch.append(track)
                    elif self._unchanged(track, line, run, skipped, refreshed):
                        pass
                    else:
                        batch.append(track)
                    if previous is not None and len(skipped) + len(gone) >= SKIPPED_PER_PART:
                        self._flush_skipped(run, manifest, (skipped, refreshed, gone), previous)
                if previous is not None:
                    self._flush_skipped(run, manifest, (skipped, refreshed, gone), previous)
                failures: list[dict[str, Any]] = []
                outcomes = pool.map(lambda t: self._submit(identity, t), batch)
                for track, outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, str):
                        run.window[outcome] = track.name
                    else:
                        failures.append(outcome)
                self._write(run, manifest, failures)
                if previous is not None:
                    run.offset = previous.offset
                if batch:
                    self.log.info(
                        "Catalog: %d job(s) created (%d source(s) unusable); %d running, %d track(s) taken",
                        len(batch) - len(failures),
                        len(failures),
                        len(run.window),
                        run.cursor,
                    )
        run.ahead = sorted(ahead)

    def _submit(self, identity: TaskIdentity, track: Track) -> str | dict[str, Any]:
        """Upload one track and create its job: the job id, or the record of a source that failed."""
        try:
            url = self.hook.upload_file(track.source)
        except MusicAIInputError as exc:
            self.log.warning("Catalog track %s cannot be uploaded: %s", track.name, exc)
            error = {"code": BAD_SOURCE, "title": "Source not usable", "message": str(exc)}
            return track_record(track.name, "FAILED", error=error)
        extra: dict[str, Any] = {}
        if self.copy_results_to is not None:
            extra["copy_results_to"] = str(join(self.copy_results_to, track.stem)) + "/"
            extra["copy_outputs"] = self.copy_outputs
            extra["storage_conn_id"] = self.storage_conn_id
        metadata = {**identity.metadata(), "musicaiCatalogTrack": track.digest}
        return self.hook.create_job(
            f"catalog {track.stem}"[:200],
            self.workflow,
            place(self.workflow_params, url),
            metadata,
            idempotency_key=track_key(identity, track),
            **extra,
        )

    def _defer(self, run: CatalogRun) -> None:
        from airflow_provider_musicai.triggers.catalog import MusicAICatalogTrigger

        window = list(run.window)
        self.defer(
            trigger=MusicAICatalogTrigger(
                job_ids=window,
                workflow=self.workflow,
                min_finished=max(1, len(window) // 4),
                musicai_conn_id=self.musicai_conn_id,
                poll_interval=self.poll_interval,
                delete_on_kill=self.delete_on_kill,
                carry=run.to_carry(),
                hold=self.deferral_hold,
            ),
            method_name="execute_complete",
        )

    def _wait_here(self, window: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        """Wait on the worker as a deferred run waits in the triggerer: its trigger, run in an event
        loop of its own (the shared poller's cycle: a job missing from the listings is read to
        confirm it, a deleted one is FAILED ``GONE``); the outcomes of the first cycle with any."""
        import asyncio

        from airflow_provider_musicai.triggers._job_feed import aclosing
        from airflow_provider_musicai.triggers.catalog import MusicAICatalogTrigger

        trigger = MusicAICatalogTrigger(
            job_ids=list(window),
            workflow=self.workflow,
            musicai_conn_id=self.musicai_conn_id,
            poll_interval=self.poll_interval,
            hold=0.0,
        )

        async def first_event() -> dict[str, Any]:
            events = trigger.run()  # yields one event
            try:
                return dict((await anext(events)).payload)
            finally:
                await aclosing(events)

        event = asyncio.run(first_event())
        if event.get("status") != "finished":
            raise MusicAIError(f"Waiting for the catalog's jobs failed: {event.get('message')}")
        return dict(event["finished"])

    # -- recording --------------------------------------------------------------------------

    def _record(self, run: CatalogRun, manifest: Manifest, finished: Mapping[str, Mapping[str, Any]]) -> None:
        """Move finished jobs from the window to the manifest (downloading results if asked)."""
        items = [(job_id, outcome) for job_id, outcome in finished.items() if job_id in run.window]
        with ThreadPoolExecutor(self.upload_concurrency, thread_name_prefix="musicai-catalog") as pool:
            records = list(pool.map(lambda item: self._outcome_record(item[0], item[1], run), items))
        for job_id, _ in items:
            run.window.pop(job_id, None)
        self._write(run, manifest, records)
        if records:
            self.log.info(
                "Catalog: %d track(s) finished and recorded; %d succeeded and %d failed so far",
                len(records),
                run.succeeded,
                run.failed,
            )
        if self.delete_after:
            for job_id, _ in items:
                self._delete_quietly(job_id, "delete_after", log_deletion=False)

    def _outcome_record(self, job_id: str, outcome: Mapping[str, Any], run: CatalogRun) -> dict[str, Any]:
        """The manifest record of a finished job: its outputs where the results went."""
        name, status, error = run.window[job_id], outcome.get("status"), outcome.get("error")
        if status != "SUCCEEDED":
            self.log.warning("Catalog track %s: job %s FAILED (%s)", name, job_id, (error or {}).get("code"))
            return track_record(name, status, job_id, error=error)
        stem = Track(name=name, source=None).stem  # the stem derives from the name alone
        if self.destination is not None:
            try:
                written = self.hook.download_results(job_id, join(self.destination, stem))
            except MusicAIError as exc:
                failure = {"code": "DOWNLOAD_FAILED", "title": type(exc).__name__, "message": str(exc)}
                return track_record(name, "FAILED", job_id, error=failure)
            outputs: Any = {key: str(path) for key, path in written.items()}
        elif self.copy_results_to is not None:
            outputs = {"folder": str(join(self.copy_results_to, stem)) + "/"}
        else:
            outputs = outcome.get("result")
        return track_record(name, status, job_id, outputs, error)

    def _write(self, run: CatalogRun, manifest: Manifest, records: list[dict[str, Any]]) -> None:
        """Record finished tracks: the state first (a crash between the two leaves a track the
        retry reattaches to and records again), then the manifest."""
        if self.incremental and records:
            self._state_store(None).write([self._state_line(run, record) for record in records])
        manifest.write(records)
        for record in records:
            run.tally(record["status"])

    def _finish(self, context: Context, total: int, manifest: Manifest, run: CatalogRun) -> dict[str, Any]:
        processed = run.processed
        summary = {"total": total, "processed": processed, **run.counts(), "manifest": str(manifest)}
        self.log.info(
            "Music AI catalog done: %d track(s): %d processed (%d succeeded, %d failed), "
            "%d skipped (unchanged), %d removed; manifest %s",
            total,
            processed,
            run.succeeded,
            run.failed,
            run.skipped,
            run.removed,
            manifest,
        )
        if self.incremental:
            self._announce(context, summary, manifest)
            self._state_store(context).release(self._holder(context))
        if processed and run.failed / processed > self.max_failed_fraction:
            raise MusicAICatalogFailedError(run.failed, processed, self.max_failed_fraction, str(manifest))
        return summary

    # -- resuming ---------------------------------------------------------------------------

    def _resume(self, context: Context, manifest: Manifest) -> CatalogRun:
        """The run's state at the start of a try: fresh, or rebuilt from the manifest and jobs."""
        identity = TaskIdentity.from_context(context)
        run = CatalogRun()
        done = FinishedTracks(
            self._count_removed(manifest.read(), run)
        )  # 8 bytes a track, never a dict of the catalog
        saved = self._task_state(context).get()
        if not done and identity.try_number <= 1 and saved is None:
            return run  # a first try with nothing behind it: no lookup at all
        jobs: dict[str, str] = {}  # track digest -> job id, when the jobs are scanned
        if saved is not None and not saved.get("creating"):
            window = {j: n for j, n in dict(saved.get("window") or {}).items() if n not in done}
            how = "the task state store"
        else:
            window, jobs = {}, self._scan(identity)
            how = "the jobs' idempotency keys"
        # One streamed pass: count the recorded tracks, reattach scanned jobs, find the cursor.
        running = set(window.values())
        cursor, ahead, total = None, [], 0
        after: str | None = None  # the last track before the cursor: where the walk resumes
        for position, track in enumerate(iter_tracks(self.sources)):
            total = position + 1
            status = done.status(track.name)
            if status is not None:
                run.tally(status)
            elif track.digest in jobs:
                window[jobs[track.digest]] = track.name
                self._reprint(run, track)
            elif track.name in running:
                self._reprint(run, track)
            else:
                cursor = position if cursor is None else cursor
                continue
            if cursor is None:
                after = track.name
            else:
                ahead.append(track.name)
        run.cursor, run.after = total if cursor is None else cursor, after
        run.window, run.ahead = window, ahead
        self.log.info(
            "Resuming the Music AI catalog: %d track(s) recorded, %d job(s) reattached (found by %s)",
            len(done),
            len(window),
            how,
        )
        # Jobs that finished while nobody watched are recorded by the first wait (they are final).
        return run

    def _scan(self, identity: TaskIdentity) -> dict[str, str]:
        """``{track digest: job id}`` of this task instance's jobs: one listing."""
        prefix = identity.base_key + "-t"
        found: dict[str, str] = {}
        for key, job in self.hook.iter_keyed_jobs(self.workflow):
            if key.startswith(prefix):
                found.setdefault(key[len(prefix) :], str(job["id"]))
        return found

    # -- incremental runs -------------------------------------------------------------------

    def _state_store(self, context: Context | None) -> CatalogState:
        """The processed-state folder (set up on the first call of a worker process)."""
        if self._store is None:
            if context is None:
                raise RuntimeError("the catalog state is used before it was set up")
            self._store = CatalogState(
                self._task_folder(context, self.state, "_musicai_state", per_run=False)
            )
            self._holder(context)
        return self._store

    def _holder(self, context: Context) -> str:
        """This task instance, as the lease and the state lines name it."""
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        self._holder_id = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{-1 if map_index is None else map_index}"
        return self._holder_id

    def _state_reader(self, context: Context, run: CatalogRun) -> StateReader | None:
        """The state read in step with the catalog, from where this call's walk resumes."""
        if not self.incremental:
            return None
        store = self._state_store(context)
        try:
            reader = store.reader(run.snapshot, run.offset)
        except FileNotFoundError:  # compacted away meanwhile (a lease taken over): read the newest
            run.snapshot, run.offset = store.compact(), 0
            reader = store.reader(run.snapshot)
        if not run.offset and run.after is not None:
            reader.skip_to(run.after)
        return reader

    def _request(self) -> str:
        """The request digest (of the rendered fields; computed once per worker call)."""
        if self._request_digest is None:
            self._request_digest = request_digest(
                self.workflow, self.workflow_params, self.destination, self.copy_results_to, self.copy_outputs
            )
        return self._request_digest

    def _fingerprint(self, track: Track, line: Mapping[str, Any] | None) -> dict[str, Any]:
        try:
            return content_identity(track.source, track.info, line)
        except Exception as exc:  # unreadable: processed, and the upload says why
            self.log.warning("Catalog track %s cannot be fingerprinted: %s", track.name, exc)
            return {"content": None, "size": None, "mtime": None}

    def _reprint(self, run: CatalogRun, track: Track) -> None:
        """Fingerprint a track reattached by a new try (its state line is written when it ends)."""
        if self.incremental:
            run.prints[track.name] = self._fingerprint(track, None)

    def _unchanged(
        self,
        track: Track,
        line: Mapping[str, Any] | None,
        run: CatalogRun,
        skipped: list[dict[str, Any]],
        refreshed: list[dict[str, Any]],
    ) -> bool:
        """Whether ``track`` is skipped (then its SKIPPED record is added to ``skipped``); a track to
        process keeps its fingerprint in the run until its outcome is recorded."""
        fingerprint = self._fingerprint(track, line)
        if (
            line is not None
            and fingerprint["content"] is not None
            and line.get("status") == "SUCCEEDED"
            and line.get("request") == self._request()
            and line.get("content") == fingerprint["content"]
            and not forced(self._forced, track.name)
            and self._outputs_exist(line.get("outputs"))
        ):
            skipped.append(track_record(track.name, "SKIPPED", line.get("job_id"), line.get("outputs")))
            if (line.get("size"), line.get("mtime")) != (fingerprint["size"], fingerprint["mtime"]):
                refreshed.append({**line, **fingerprint, "at": now_iso()})  # touched, same bytes
            return True
        run.prints[track.name] = fingerprint
        return False

    def _flush_skipped(
        self,
        run: CatalogRun,
        manifest: Manifest,
        pending: tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]],
        previous: StateReader,
    ) -> None:
        """Record the skipped tracks, refreshed state lines and removed tracks gathered so far."""
        skipped, refreshed, gone = pending
        self._state_store(None).write(refreshed)
        manifest.write(skipped)
        for record in skipped:
            run.tally(record["status"])
        self._removed(run, manifest, gone)
        for gathered in pending:
            gathered.clear()
        run.offset = previous.offset

    def _state_line(self, run: CatalogRun, record: Mapping[str, Any]) -> dict[str, Any]:
        """The state's line for a recorded track (a removed one: forget it)."""
        name = str(record["source"])
        if record["status"] == "REMOVED":
            return {"source": name, "removed": True}
        fingerprint = run.prints.pop(name, None) or {"content": None}
        return {
            "source": name,
            **fingerprint,
            "request": self._request(),
            "status": "SUCCEEDED" if record["status"] == "SUCCEEDED" else "FAILED",
            "job_id": record.get("job_id"),
            "outputs": record.get("outputs"),
            "run_id": self._holder_id,
            "at": now_iso(),
        }

    def _outputs_exist(self, outputs: Any) -> bool:
        """Whether a track's recorded outputs are still where they were written (one ``exists``
        per file: a stat on local disk, a HEAD request on an object store). ``copy_results_to``
        outputs are looked at through the connection that presigned them (the one the URL names,
        else ``storage_conn_id``); a store with no filesystem here (``s3fs``, ``gcsfs`` missing)
        cannot be checked: its outputs are taken as present, with one warning."""
        if self.destination is None and self.copy_results_to is None:
            return True  # result references: nothing of ours to look at
        if not isinstance(outputs, Mapping) or not outputs:
            return False
        if self.destination is not None:
            paths = [str(path) for path in outputs.values()]
        else:
            folder = str(outputs.get("folder") or "")
            paths = [folder + name for name in self.copy_outputs] if self.copy_outputs else [folder]
        try:
            for path in paths:
                located: Any = path
                if self.destination is None and self.storage_conn_id and "://" in path:
                    located = path if names_connection(path) else storage_path(path, self.storage_conn_id)
                fs, where = _fs_and_path(located)
                if not fs.exists(where):
                    return False
        except Exception as exc:  # e.g. no fsspec filesystem for the store here
            if not self._unchecked:
                self.log.warning("Cannot check the outputs %s (%s): outputs taken as present", paths[0], exc)
            self._unchecked = True
        return True

    def _removed(self, run: CatalogRun, manifest: Manifest, lines: Iterable[Mapping[str, Any]]) -> None:
        """Report tracks gone from the catalog (and delete their outputs if ``prune_removed``),
        ``SKIPPED_PER_PART`` records at a time."""
        records: list[dict[str, Any]] = []
        for line in lines:
            outputs = line.get("outputs")
            if self.prune_removed and outputs:
                self._prune(outputs)
                outputs = None
            records.append(track_record(line["source"], "REMOVED", line.get("job_id"), outputs))
            if len(records) >= SKIPPED_PER_PART:
                self._write(run, manifest, records)
                records = []
        self._write(run, manifest, records)

    def _prune(self, outputs: Mapping[str, Any]) -> None:
        paths = [str(path) for path in outputs.values()]
        for path in paths:
            try:
                fs, where = _fs_and_path(path)
                if fs.exists(where):
                    fs.rm(where, recursive=True)
            except Exception as exc:
                self.log.warning("Could not delete the output %s of a removed track: %s", path, exc)
        for folder in {path.rstrip("/").rsplit("/", 1)[0] for path in paths if "/" in path}:
            try:  # the track's folder, once empty
                fs, where = _fs_and_path(folder)
                if fs.isdir(where) and not fs.ls(where):
                    fs.rmdir(where)
            except Exception as exc:
                self.log.debug("Left the folder %s of a removed track: %s", folder, exc)

    def _count_removed(self, records: Any, run: CatalogRun) -> Any:
        """``records``, counting the REMOVED ones in ``run`` (they are not tracks of the catalog)."""
        for record in records:
            if record.get("status") == "REMOVED":
                run.tally("REMOVED")
            yield record

    def _announce(self, context: Context, summary: Mapping[str, Any], manifest: Manifest) -> None:
        """Put what changed on the event of each Asset outlet: counts, and up to
        ``CHANGED_NAMED`` processed (succeeded) and removed tracks (the manifest has them all)."""
        if not self.outlets:
            return
        changed: list[str] = []
        removed: list[str] = []
        more = False
        for record in manifest.read():
            names = {"SUCCEEDED": changed, "REMOVED": removed}.get(str(record.get("status")))
            if names is None:
                continue
            if len(names) < CHANGED_NAMED:
                names.append(str(record["source"]))
            else:
                more = True
        extra = {
            "musicai_catalog": {
                **{
                    key: summary[key]
                    for key in ("total", "processed", "succeeded", "failed", "skipped", "removed")
                },
                "changed": changed,
                "removed_sources": removed,
                "truncated": more,
                "manifest": summary["manifest"],
            }
        }
        record_asset_events(context, self.outlets, extra)

    # -- helpers ----------------------------------------------------------------------------

    def _manifest_folder(self, context: Context) -> Any:
        return self._task_folder(context, self.manifest, "_musicai_manifest", per_run=True)

    def _task_folder(self, context: Context, given: Any, kind: str, *, per_run: bool) -> Any:
        """``given``, or ``<destination or copy_results_to>/<kind>/<dag>[/<run>]/<task>``."""
        import re

        if given is not None:
            return given
        base = self.destination if self.destination is not None else self.copy_results_to
        if base is None:
            what = "manifest" if per_run else "state"
            raise MusicAIConfigurationError(
                f"MusicAICatalogOperator needs somewhere to write its {what}: set {what}, "
                "destination or copy_results_to"
            )
        ti = context["ti"]
        parts = (ti.dag_id, ti.run_id, ti.task_id) if per_run else (ti.dag_id, ti.task_id)
        safe = [re.sub(r"[^A-Za-z0-9_.-]+", "_", str(part)) for part in parts]
        map_index = getattr(ti, "map_index", -1)
        if map_index is not None and int(map_index) >= 0:
            safe[-1] += f".{map_index}"
        return join(base, kind, *safe)

    def _save(self, context: Context, run: CatalogRun, creating: bool = False) -> None:
        """Record the window (and whether jobs are being created) for the next try."""
        self._task_state(context).set({"window": dict(run.window), "creating": creating})

    def _task_state(self, context: Context) -> TaskStateSlot:
        """The run's record in Airflow 3.3's task state store (none on earlier releases)."""
        return TaskStateSlot.of(context, STATE_STORE_KEY, self.log, "a retry scans the jobs instead")


def forced(force: Any, name: str) -> bool:
    """Whether ``force`` (True, a glob, a list of names/globs, or their rendered text) names ``name``."""
    import fnmatch

    patterns = force_patterns(force)
    if isinstance(patterns, bool):
        return patterns
    return any(name == pattern or fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def force_patterns(force: Any) -> bool | list[str]:
    """``force`` as True/False or a list of globs; a template renders lists and booleans as text."""
    import ast

    if force is None or isinstance(force, bool):
        return bool(force)
    if isinstance(force, str):
        text = force.strip()
        if text.lower() in {"", "false", "none", "0", "no"}:
            return False
        if text.lower() in {"true", "1", "yes", "all"}:
            return True
        if text.startswith("["):
            try:
                force = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                force = text.strip("[]").split(",")
        else:
            force = text.split(",")
    return [str(pattern).strip().strip("'\"") for pattern in force if str(pattern).strip()]


def track_key(identity: TaskIdentity, track: Track) -> str:
    """The idempotency key of ``track``'s job in this task instance: equal for every try."""
    return f"{identity.base_key}-t{track.digest}"
