"""The two stores of a catalog run: its sources (listed) and its manifest (JSON Lines parts).

Sources are a list, or every file under a folder/prefix (local path, fsspec URL or
``ObjectStoragePath``), in sorted order so that a position in the catalog (the run's cursor) means
the same track in every worker call. A folder is streamed (walked in sorted order, never held
whole), so a worker's memory does not grow with the catalog. A track's *name* is its path
relative to the folder (or the source itself, for a list): it derives the idempotency key and
the per-track output folder.

The manifest is a folder of ``part-*.jsonl`` files, each written whole (object stores have no
append), one line per finished track: ``{"source", "job_id", "status", "outputs", "error"}``.
Reading every part gives the finished tracks when a new try resumes; :class:`FinishedTracks` keeps
them as 8 bytes a track (a dict of names and statuses cost ~160 bytes a track: 16 MiB at 100,000).
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import itertools
import json
import posixpath
import time
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

#: Files under a catalog folder that are never tracks: hidden files and ``_``-prefixed folders
#: (the default manifest lives in ``_musicai_manifest``).
_SKIPPED_PREFIXES = (".", "_")


@dataclass(frozen=True)
class Track:
    """One catalog entry: ``name`` identifies it, ``source`` is what is uploaded."""

    name: str
    source: Any
    #: What the listing said of the file (size, mtime, ETag...), for incremental runs; None for a list.
    info: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def digest(self) -> str:
        """20 hex digits of the name's SHA-256: the track's part of its idempotency key."""
        return hashlib.sha256(self.name.encode()).hexdigest()[:20]

    @property
    def stem(self) -> str:
        """The track's output folder name: its relative path without the extension."""
        root, _ = posixpath.splitext(self.name.replace("\\", "/").split("://", 1)[-1].lstrip("/"))
        return root or self.digest


def names_connection(url: str) -> bool:
    """Whether ``url`` names an Airflow connection, as ``ObjectStoragePath`` spells it
    (``s3://conn_id@bucket/key``): a rendered template can only carry a string."""
    parts = urlsplit(url)
    return bool(parts.scheme) and parts.scheme != "file" and "@" in parts.netloc


def storage_path(url: str, conn_id: str | None = None) -> Any:
    """``url`` as an ``ObjectStoragePath``: its filesystem uses the Airflow connection it names
    (or ``conn_id``), e.g. an S3 connection's keys and ``endpoint_url``."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    return ObjectStoragePath(url, conn_id=conn_id) if conn_id else ObjectStoragePath(url)


def _fs_and_root(folder: Any) -> tuple[Any, str, Any]:
    """``(filesystem, root path, joiner)`` of a folder given as a path, URL or ObjectStoragePath;
    a URL naming a connection (``s3://conn_id@bucket/key``) is read through that connection."""
    if isinstance(folder, str) and names_connection(folder):
        folder = storage_path(folder)
    if hasattr(folder, "fs") and hasattr(folder, "path"):  # ObjectStoragePath keeps its conn_id
        return folder.fs, str(folder.path), folder
    import fsspec

    text = str(folder)
    fs, root = fsspec.core.url_to_fs(text)
    return fs, str(root), text


def iter_tracks(sources: Any, start: int = 0, after: str | None = None) -> Iterator[Track]:
    """Every track of ``sources`` in a stable (sorted) order, streamed: from position ``start``,
    or, given ``after`` (a track's name), every track whose name sorts after it.

    A folder is walked one directory at a time (each directory's entries sorted, a sub-folder
    ``d`` ordered as ``d/``), which yields exactly the order of sorting every path, while memory
    holds one directory listing per level instead of the whole catalog. Resuming ``after`` a name
    lists only the folders on its path and those after it: a count (``start``) has to list every
    folder before the position again, which on a wake-up near the end of a 100,000-track catalog
    cost ~2 s on local disk and a LIST request per 1,000 skipped objects on an object store.
    """
    if isinstance(sources, (list, tuple)):
        tracks = sorted({str(source): Track(name=str(source), source=source) for source in sources}.items())
        first = start if after is None else bisect.bisect_right([name for name, _ in tracks], after)
        yield from itertools.islice((track for _, track in tracks), first, None)
        return
    fs, root, base = _fs_and_root(sources)
    root = root.rstrip("/")
    if not fs.isdir(root):
        return  # as a listing of a missing folder: no track
    entries = _walk_sorted(fs, root, after)
    for path, info in entries if after is not None else itertools.islice(entries, start, None):
        relative = path[len(root) :].lstrip("/")
        source = base / relative if not isinstance(base, str) else f"{base.rstrip('/')}/{relative}"
        yield Track(name=relative, source=source, info=info)


#: The listing's fields a track keeps (what fingerprints a file without reading it).
_INFO_FIELDS = ("size", "mtime", "ETag", "md5Hash", "crc32c", "generation")


def _walk_sorted(fs: Any, folder: str, after: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(path, listing info)`` of the files under ``folder`` in sorted path order, skipping
    ``.``/``_`` names (and their trees).

    ``after`` (a path relative to ``folder``): only files sorting after it; a sub-folder wholly
    before it is not listed. Each folder is listed afresh (``refresh``): an object store's
    filesystem is cached per connection and keeps listings, so a later run in the same process
    (``dag.test()``, a long-lived worker) would otherwise miss new and rewritten objects.
    """
    entries = []
    for info in fs.ls(folder, detail=True, refresh=True):
        path = str(info["name"]).rstrip("/")
        name = posixpath.basename(path)
        if path == folder or not name or name.startswith(_SKIPPED_PREFIXES):
            continue
        is_dir = info.get("type") == "directory"
        kept = {key: info[key] for key in _INFO_FIELDS if info.get(key) is not None}
        entries.append((name + "/" if is_dir else name, path, is_dir, kept))
    entries.sort(key=lambda entry: entry[0])
    for key, path, is_dir, kept in entries:
        if after is None or key > after:
            yield from _walk_sorted(fs, path) if is_dir else ((path, kept),)
        elif is_dir and after.startswith(key):  # the folder ``after`` is in: resume inside it
            yield from _walk_sorted(fs, path, after[len(key) :])


class TrackStream:
    """The catalog's tracks from a cursor (a position, or the name of the last track taken),
    taken one at a time (look-ahead of one)."""

    def __init__(self, sources: Any, start: int = 0, after: str | None = None) -> None:
        self._tracks = iter_tracks(sources, start, after)
        self._next = next(self._tracks, None)

    @property
    def exhausted(self) -> bool:
        """True once every track was taken."""
        return self._next is None

    def take(self) -> Track:
        """The next track (call only while not ``exhausted``)."""
        track = self._next
        if track is None:
            raise IndexError("the catalog has no more tracks")
        self._next = next(self._tracks, None)
        return track


def join(folder: Any, *parts: str) -> Any:
    """``folder/part/...`` for a local path, an fsspec URL or an ``ObjectStoragePath``."""
    if not isinstance(folder, str):
        for part in parts:
            folder = folder / part
        return folder
    return "/".join([folder.rstrip("/"), *parts])


class Manifest:
    """A folder of JSON Lines parts, one line per finished track."""

    def __init__(self, folder: Any) -> None:
        self.folder = folder
        self.fs, self.root, _ = _fs_and_root(folder)
        self.root = self.root.rstrip("/")

    def __str__(self) -> str:
        return str(self.folder)

    def write(self, records: Sequence[dict[str, Any]]) -> str | None:
        """Write ``records`` as one new part (whole, then renamed into place); return its path."""
        if not records:
            return None
        self.fs.makedirs(self.root, exist_ok=True)
        name = f"part-{time.time_ns():020d}.jsonl"
        path = f"{self.root}/{name}"
        data = "".join(json.dumps(record, sort_keys=True, default=str) + "\n" for record in records)
        staging = f"{self.root}/.{name}.tmp"
        self.fs.pipe_file(staging, data.encode())
        self.fs.mv(staging, path)
        return path

    def read(self) -> Iterator[dict[str, Any]]:
        """Every record of every part, oldest part first (a later record of a track wins)."""
        if not self.fs.exists(self.root):
            return
        for path in sorted(self.fs.find(self.root)):
            if not posixpath.basename(str(path)).startswith("part-"):
                continue
            for line in self.fs.cat_file(path).decode().splitlines():
                if line.strip():
                    yield json.loads(line)


class FinishedTracks:
    """The tracks a manifest records and each one's outcome, in 8 bytes a track.

    Each record becomes one 64-bit key: 62 bits of the SHA-256 of the track's name, then two bits
    of outcome (SUCCEEDED, SKIPPED by an incremental run, anything else: FAILED). Keys are sorted
    in chunks and merged into one sorted array, so building it holds about twice the array at
    most; a lookup is a binary search. Two names sharing 62 bits of SHA-256 (odds ~1e-9 at
    100,000 tracks) would be taken for one. A track recorded twice (the operator never writes
    that) counts as succeeded if either record says so, else as skipped if either says so.
    Records of tracks gone from the catalog (``REMOVED``) are not tracks of this run: not kept.
    """

    _CHUNK = 4096
    _CODES = {"SUCCEEDED": 1, "SKIPPED": 2}

    def __init__(self, records: Iterable[Mapping[str, Any]]) -> None:
        chunks: list[array[int]] = []
        chunk: list[int] = []
        for record in records:
            status = record.get("status")
            if status == "REMOVED":
                continue
            chunk.append(self._key(str(record.get("source"))) | self._CODES.get(str(status), 0))
            if len(chunk) >= self._CHUNK:
                chunks.append(array("Q", sorted(chunk)))
                chunk = []
        chunks.append(array("Q", sorted(chunk)))
        self._keys = array("Q", heapq.merge(*chunks))
        del chunks
        self._count = sum(1 for _ in itertools.groupby(self._keys, key=lambda key: key >> 2))

    @staticmethod
    def _key(name: str) -> int:
        return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 2 << 2

    def __len__(self) -> int:
        """How many distinct tracks are recorded."""
        return self._count

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.status(name) is not None

    def status(self, name: str) -> str | None:
        """``"SUCCEEDED"``, ``"SKIPPED"``, ``"FAILED"`` (any other outcome) or None when ``name``
        is not recorded."""
        key = self._key(name)
        at = bisect.bisect_left(self._keys, key)
        codes = set()
        while at < len(self._keys) and self._keys[at] >> 2 == key >> 2:
            codes.add(self._keys[at] & 3)
            at += 1
        if not codes:
            return None
        return "SUCCEEDED" if 1 in codes else "SKIPPED" if 2 in codes else "FAILED"

    @property
    def nbytes(self) -> int:
        """Bytes held by the keys (benchmarks, tests)."""
        return self._keys.itemsize * len(self._keys)
