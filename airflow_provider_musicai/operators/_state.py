"""An incremental catalog's processed-state: what each track was, and what became of it.

The state is a folder (next to the results by default) of JSON Lines files, one line per track::

    {"source": "album1/t.wav", "content": "sha256:...", "size": 123, "mtime": 1.7e9,
     "request": "<16 hex>", "status": "SUCCEEDED" | "FAILED", "job_id": "...",
     "outputs": {...}, "run_id": "...", "at": "2026-01-01T00:00:00+00:00"}

* ``state-<through>.jsonl``: the compacted state, sorted by ``source`` (the catalog's order), so a
  run reads it in step with the catalog's listing, one line at a time;
* ``part-<ns>.jsonl``: what runs recorded since, one part per batch of finished tracks, written
  whole (``{"source", "removed": true}`` forgets a track gone from the catalog). A worker killed
  half way leaves its parts: the next try or run merges them in.
* ``lease.json``: the run working on the catalog (see :meth:`CatalogState.acquire`).

Compaction (at the start of every try) merges the snapshot and the parts into a new snapshot
through an SQLite index in a temporary file: memory holds SQLite's page cache (~2 MiB) and one
part at a time, whatever the catalog's size. ``<through>`` names the newest part merged; a part
no newer is already in the snapshot (a compaction killed before deleting its parts).
"""

from __future__ import annotations

import contextlib
import json
import logging
import posixpath
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from airflow_provider_musicai.operators._catalog import _fs_and_root

log = logging.getLogger(__name__)

SNAPSHOT_PREFIX = "state-"
PART_PREFIX = "part-"
LEASE = "lease.json"


def _stamp(name: str) -> int:
    """The 20-digit number in ``state-<n>.jsonl`` / ``part-<n>.jsonl``."""
    digits = posixpath.basename(name).split("-", 1)[1].split(".", 1)[0]
    return int(digits) if digits.isdigit() else 0


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class CatalogState:
    """The state folder of one incremental catalog task."""

    def __init__(self, folder: Any) -> None:
        self.folder = folder
        self.fs, root, _ = _fs_and_root(folder)
        self.root = root.rstrip("/")

    def __str__(self) -> str:
        return str(self.folder)

    def _files(self, prefix: str) -> list[str]:
        if not self.fs.exists(self.root):
            return []
        names = [str(path) for path in self.fs.ls(self.root, detail=False)]
        return sorted(
            (
                path
                for path in names
                if posixpath.basename(path).startswith(prefix) and path.endswith(".jsonl")
            ),
            key=_stamp,
        )

    # -- writing ----------------------------------------------------------------------------

    def write(self, lines: Sequence[Mapping[str, Any]]) -> None:
        """Record ``lines`` as one new part, written whole then renamed into place."""
        if not lines:
            return
        self.fs.makedirs(self.root, exist_ok=True)
        name = f"{PART_PREFIX}{time.time_ns():020d}.jsonl"
        data = "".join(json.dumps(dict(line), default=str) + "\n" for line in lines)
        staging = f"{self.root}/.{name}.tmp"
        self.fs.pipe_file(staging, data.encode())
        self.fs.mv(staging, f"{self.root}/{name}")

    def compact(self) -> str | None:
        """Merge the parts into a new sorted snapshot; return its path (None: no state yet)."""
        snapshots = self._files(SNAPSHOT_PREFIX)
        current = snapshots[-1] if snapshots else None
        through = _stamp(current) if current else 0
        parts = self._files(PART_PREFIX)
        fresh = [part for part in parts if _stamp(part) > through]
        if not fresh:
            self._remove([*snapshots[:-1], *parts])
            return current
        newest = max(_stamp(part) for part in fresh)
        target = f"{self.root}/{SNAPSHOT_PREFIX}{newest:020d}.jsonl"
        staging = f"{self.root}/.{posixpath.basename(target)}.tmp"
        with tempfile.TemporaryDirectory(prefix="musicai-state-") as tmp:
            index = sqlite3.connect(f"{tmp}/index.sqlite")
            try:
                index.execute("CREATE TABLE line (source TEXT PRIMARY KEY, text TEXT, removed INTEGER)")
                for part in fresh:  # oldest first: a later line of a track replaces an earlier one
                    rows = []
                    for text in self.fs.cat_file(part).decode().splitlines():
                        if text.strip():
                            record = json.loads(text)
                            rows.append((str(record["source"]), text, int(bool(record.get("removed")))))
                    index.executemany("INSERT OR REPLACE INTO line VALUES (?, ?, ?)", rows)
                changed = index.execute("SELECT source, text, removed FROM line ORDER BY source")
                with self.fs.open(staging, "wb") as out:
                    for text in _merge(self._lines(current), changed):
                        out.write(text.encode() + b"\n")
            finally:
                index.close()
        self.fs.mv(staging, target)
        self._remove([*snapshots, *parts])
        return target

    def _lines(self, snapshot: str | None) -> Iterator[tuple[str, str]]:
        """``(source, line)`` of a snapshot, streamed."""
        if snapshot is None:
            return
        with self.fs.open(snapshot, "rb") as handle:
            for raw in handle:
                text = raw.decode().rstrip("\n")
                if text.strip():
                    yield str(json.loads(text)["source"]), text

    def _remove(self, paths: Sequence[str]) -> None:
        for path in paths:
            with contextlib.suppress(FileNotFoundError, OSError):
                self.fs.rm(path)

    def reader(self, snapshot: str | None, offset: int = 0) -> StateReader:
        """Read ``snapshot`` in the catalog's order from byte ``offset`` (a line's start)."""
        return StateReader(self.fs, snapshot, offset)

    # -- the lease --------------------------------------------------------------------------

    def acquire(self, holder: str, timeout: float) -> None:
        """Take the catalog for ``holder`` (a run's task instance), or raise if another holds it.

        The lease file is created exclusively (``xb``: ``O_EXCL`` on local disk, a conditional
        write where the store's fsspec filesystem supports one); the same task instance (a retry)
        takes its own lease again; a lease not renewed for ``timeout`` seconds is taken over.
        """
        from airflow_provider_musicai.exceptions import MusicAICatalogBusyError

        self.fs.makedirs(self.root, exist_ok=True)
        path = f"{self.root}/{LEASE}"
        for _ in range(3):
            if self._create(path, holder):
                return
            try:
                lease = json.loads(self.fs.cat_file(path))
            except FileNotFoundError:
                continue  # released meanwhile
            if lease.get("holder") == holder:
                self.renew(holder)
                return
            if time.time() - float(lease.get("renewed", 0)) <= timeout:
                raise MusicAICatalogBusyError(str(lease.get("holder")), str(self))
            log.warning("Taking over the lease of %s, not renewed for %.0f s", lease.get("holder"), timeout)
            self._remove([path])
        raise MusicAICatalogBusyError("unknown", str(self))

    def _create(self, path: str, holder: str) -> bool:
        data = json.dumps({"holder": holder, "renewed": time.time(), "since": now_iso()}).encode()
        try:
            with self.fs.open(path, "xb") as handle:
                handle.write(data)
        except FileExistsError:
            return False
        except (ValueError, NotImplementedError):  # no exclusive create here: check, then write
            if self.fs.exists(path):
                return False
            self.fs.pipe_file(path, data)
        return True

    def renew(self, holder: str) -> None:
        """Mark the lease alive (each wake-up of the run)."""
        data = {"holder": holder, "renewed": time.time(), "since": now_iso()}
        self.fs.pipe_file(f"{self.root}/{LEASE}", json.dumps(data).encode())

    def release(self, holder: str) -> None:
        """Drop the lease if ``holder`` has it."""
        path = f"{self.root}/{LEASE}"
        with contextlib.suppress(FileNotFoundError, ValueError):
            if json.loads(self.fs.cat_file(path)).get("holder") == holder:
                self._remove([path])


def _merge(old: Iterator[tuple[str, str]], changed: Any) -> Iterator[str]:
    """The lines of two sorted streams by source, ``changed`` winning; removed sources dropped."""
    pending_old = next(old, None)
    for source, text, removed in changed:
        while pending_old is not None and pending_old[0] < source:
            yield pending_old[1]
            pending_old = next(old, None)
        if pending_old is not None and pending_old[0] == source:
            pending_old = next(old, None)
        if not removed:
            yield text
    while pending_old is not None:
        yield pending_old[1]
        pending_old = next(old, None)


class StateReader:
    """A snapshot read in step with the catalog: each lookup moves forward, never back."""

    def __init__(self, fs: Any, snapshot: str | None, offset: int = 0) -> None:
        self.snapshot = snapshot
        self._handle = fs.open(snapshot, "rb") if snapshot else None
        if self._handle is not None and offset:
            self._handle.seek(offset)
        self.offset = offset  # where the look-ahead line starts
        self._next: dict[str, Any] | None = None
        self._advance()

    def _advance(self) -> None:
        self._next = None
        if self._handle is None:
            return
        while True:
            start = self._handle.tell()
            raw = self._handle.readline()
            if not raw:
                self.offset = start
                return
            if raw.strip():
                self.offset = start
                self._next = json.loads(raw)
                return

    def skip_to(self, after: str) -> None:
        """Move past every line up to ``after`` (a resumed walk: those tracks were handled)."""
        while self._next is not None and str(self._next["source"]) <= after:
            self._advance()

    def lookup(self, name: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """``(the line of name or None, lines passed before it)``: passed sources are no longer
        in the catalog (it is walked in the same order)."""
        passed = []
        while self._next is not None and str(self._next["source"]) < name:
            passed.append(self._next)
            self._advance()
        if self._next is not None and self._next["source"] == name:
            found = self._next
            self._advance()
            return found, passed
        return None, passed

    def rest(self) -> Iterator[dict[str, Any]]:
        """Every line not looked up yet (the catalog's walk ended: those tracks are gone)."""
        while self._next is not None:
            line = self._next
            self._advance()
            yield line

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
