"""Streaming file transfer helpers: open an upload source of any kind, report progress, and write
downloads atomically under safe names. Nothing here holds a whole file in memory.
"""

from __future__ import annotations

import contextlib
import io
import logging
import mimetypes
import os
import re
import shutil
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from airflow_provider_musicai.exceptions import MusicAIInputError
from airflow_provider_musicai.hooks._config import TransferLimits

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
PROGRESS_EVERY_SECONDS = 5.0

_AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".wave": "audio/wav",
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/opus",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".aif": "audio/aiff",
    ".aiff": "audio/aiff",
    ".webm": "audio/webm",
    ".mp4": "video/mp4",
}


def guess_content_type(filename: str) -> str:
    """The MIME type for ``filename``'s extension; ``application/octet-stream`` if unknown."""
    suffix = PurePosixPath(filename).suffix.lower()
    return _AUDIO_TYPES.get(suffix) or mimetypes.guess_type(filename)[0] or "application/octet-stream"


@dataclass
class UploadSource:
    """A source whose exact size is known and which can be read again from its start."""

    label: str
    filename: str
    size: int
    open: Callable[[], IO[bytes]]
    cleanup: Callable[[], None] = lambda: None


def resolve_source(source: Any) -> UploadSource:
    """Accept a local path, ``file://``/fsspec URL, ObjectStoragePath or binary file object.

    Raises :class:`MusicAIInputError` naming the problem (missing, a folder, unreadable, empty)
    before anything is sent.
    """
    if isinstance(source, (bytes, bytearray)):
        raise MusicAIInputError("Upload source must be a path, URL or binary file object, not raw bytes")
    if hasattr(source, "read"):
        return _from_file_object(source)
    # Before os.PathLike: Airflow 2.11's ObjectStoragePath is one, and its fspath drops the
    # scheme and connection (s3://conn@bucket/key would be read as the local path bucket/key).
    if hasattr(source, "fs") and hasattr(source, "path") and not isinstance(source, str):
        return _from_fsspec(source.fs, str(source.path), str(source))
    if isinstance(source, os.PathLike):
        return _from_local(Path(source))
    if isinstance(source, str):
        if not source.strip():
            raise MusicAIInputError("Upload source is an empty string")
        scheme = urlsplit(source).scheme
        if scheme == "file":
            return _from_local(Path(unquote(urlsplit(source).path)))
        if "://" in source:
            return _from_url(source)
        return _from_local(Path(source))
    raise MusicAIInputError(
        f"Upload source must be a path, URL, ObjectStoragePath or binary file object, not "
        f"{type(source).__name__}"
    )


def _from_local(path: Path) -> UploadSource:
    path = path.expanduser()
    if not path.exists():
        raise MusicAIInputError(f"Upload source {path} does not exist")
    if path.is_dir():
        raise MusicAIInputError(f"Upload source {path} is a folder, not a file")
    if not os.access(path, os.R_OK):
        raise MusicAIInputError(f"Upload source {path} is not readable (permission denied)")
    size = path.stat().st_size
    if size == 0:
        raise MusicAIInputError(f"Upload source {path} is empty (0 bytes)")

    def opener() -> IO[bytes]:
        try:
            return path.open("rb")
        except OSError as exc:
            raise MusicAIInputError(f"Upload source {path} cannot be opened: {exc.strerror}") from None

    return UploadSource(label=str(path), filename=path.name, size=size, open=opener)


def _from_url(url: str) -> UploadSource:
    try:
        from fsspec.core import url_to_fs
    except ImportError:  # pragma: no cover - fsspec ships with Airflow
        raise MusicAIInputError(f"Reading {url} needs fsspec installed") from None
    try:
        fs, path = url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise MusicAIInputError(f"Upload source {url}: no filesystem for this URL ({exc})") from None
    return _from_fsspec(fs, path, url)


def _from_fsspec(fs: Any, path: str, label: str) -> UploadSource:
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise MusicAIInputError(f"Upload source {label} does not exist") from None
    except PermissionError:
        raise MusicAIInputError(f"Upload source {label} is not readable (permission denied)") from None
    if info.get("type") == "directory":
        raise MusicAIInputError(f"Upload source {label} is a folder, not a file")
    size = int(info.get("size") or 0)
    if size == 0:
        raise MusicAIInputError(f"Upload source {label} is empty (0 bytes)")
    return UploadSource(
        label=label,
        filename=PurePosixPath(path).name or "upload",
        size=size,
        open=lambda: fs.open(path, "rb"),
    )


class _Unclosable(io.RawIOBase):
    """A view of a caller's file object that the upload may close without closing the caller's."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _from_file_object(handle: Any) -> UploadSource:
    name = os.path.basename(str(getattr(handle, "name", "") or "upload"))
    if "b" not in str(getattr(handle, "mode", "b")) or isinstance(handle, io.TextIOBase):
        raise MusicAIInputError(f"Upload source {name} is opened in text mode; open it with 'rb'")
    seekable = False
    with contextlib.suppress(AttributeError, OSError, ValueError):
        seekable = bool(handle.seekable())
    if seekable:
        start = handle.tell()
        size = handle.seek(0, os.SEEK_END) - start
        handle.seek(start)
        if size <= 0:
            raise MusicAIInputError(f"Upload source {name} is empty (0 bytes left to read)")

        def reopen() -> IO[bytes]:
            handle.seek(start)
            return _Unclosable(handle)  # type: ignore[return-value]

        return UploadSource(label=name, filename=name, size=size, open=reopen)
    # A stream we cannot rewind: spool it to disk once so that its size is known and retries work.
    spool = tempfile.NamedTemporaryFile(prefix="musicai-upload-", delete=False)  # noqa: SIM115
    with spool:
        shutil.copyfileobj(handle, spool, CHUNK_SIZE)
    spooled = Path(spool.name)
    try:
        result = _from_local(spooled)
    except MusicAIInputError:
        spooled.unlink(missing_ok=True)
        raise MusicAIInputError(f"Upload source {name} is empty (0 bytes)") from None
    result.label = result.filename = name
    result.cleanup = lambda: spooled.unlink(missing_ok=True)
    return result


class ProgressReader:
    """Reads a source for an HTTP body with a known length, logging percent and MB/s every few seconds.

    ``__len__`` lets requests send an exact ``Content-Length`` (no chunked encoding), and having no
    ``__iter__`` makes it stream the body with ``read`` in bounded blocks.
    """

    def __init__(self, handle: IO[bytes], size: int, label: str, guard: RateGuard | None = None) -> None:
        self._handle = handle
        self._size = size
        self._label = label
        self._guard = guard
        self.sent = 0
        self._started = time.monotonic()
        self._next_report = self._started + PROGRESS_EVERY_SECONDS

    def __len__(self) -> int:
        return self._size

    def read(self, amount: int = -1) -> bytes:
        remaining = self._size - self.sent
        if remaining <= 0:
            return b""
        chunk = self._handle.read(remaining if amount is None or amount < 0 else min(amount, remaining))
        if not chunk and remaining:
            raise MusicAIInputError(
                f"Upload source {self._label} ended after {self.sent} of {self._size} bytes (did it change "
                "while being uploaded?)"
            )
        self.sent += len(chunk)
        if self._guard is not None:
            self._guard.advance(len(chunk))
        now = time.monotonic()
        if now >= self._next_report:
            self._next_report = now + PROGRESS_EVERY_SECONDS
            log_progress("Uploading", self._label, self.sent, self._size, now - self._started)
        return chunk


class TransferTooSlow(Exception):
    """A transfer attempt broke a :class:`TransferLimits` bound (the message names the extra)."""


class RateGuard:
    """Enforces :class:`TransferLimits` on one attempt: fed the bytes moved as they move.

    The rate is averaged over consecutive windows of ``rate_window`` seconds; the check runs
    whenever bytes move (silence itself is bounded by the read timeout).
    """

    def __init__(self, limits: TransferLimits, what: str) -> None:
        self._limits = limits
        self._what = what
        self._started = self._window_start = time.monotonic()
        self._window_bytes = 0
        self.total = 0

    def advance(self, count: int) -> None:
        """Record ``count`` more bytes; raise :class:`TransferTooSlow` if a bound is broken."""
        self.total += count
        self._window_bytes += count
        now = time.monotonic()
        limits = self._limits
        if limits.max_time and now - self._started > limits.max_time:
            raise TransferTooSlow(
                f"{self._what} took longer than {limits.max_time:g}s (connection extra "
                f"transfer_max_time) after {self.total} bytes"
            )
        elapsed = now - self._window_start
        if elapsed < limits.rate_window:
            return
        if limits.min_rate and self._window_bytes < limits.min_rate * elapsed:
            raise TransferTooSlow(
                f"{self._what} is too slow: {self._window_bytes} bytes in the last {elapsed:.1f}s, "
                f"below the minimum of {limits.min_rate:g} bytes/s (connection extras transfer_min_rate, "
                "transfer_rate_window)"
            )
        self._window_start, self._window_bytes = now, 0


class CorruptBody(Exception):
    """A body that cannot be decoded, or ended before its encoding says it is complete."""


class Gunzip:
    """Streams the decoding of a ``Content-Encoding: gzip`` body and knows whether it ended whole.

    urllib3's decoder accepts a gzip stream cut short (a body delimited by the connection's
    close has no length to check): here the gzip trailer (CRC-32 and size of the content, checked
    by zlib) must be reached. Members may follow one another; output comes in bounded pieces.
    """

    PIECE = 1 << 20

    def __init__(self) -> None:
        self._decoder = zlib.decompressobj(wbits=31)
        self._open = False  # a member has started and its trailer has not been read yet

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of the next ``data`` bytes."""
        while data:
            self._open = True
            try:
                piece = self._decoder.decompress(data, self.PIECE)
            except zlib.error as exc:
                raise CorruptBody(f"the gzip body is corrupt ({exc})") from None
            if piece:
                yield piece
            if self._decoder.eof:
                data = self._decoder.unused_data
                self._decoder, self._open = zlib.decompressobj(wbits=31), False
            else:
                data = self._decoder.unconsumed_tail

    def finish(self) -> None:
        """Raise :class:`CorruptBody` if the body ended inside a gzip member."""
        if self._open:
            raise CorruptBody("the gzip body ended before its end (cut short)")


def log_progress(verb: str, label: str, done: int, total: int | None, elapsed: float) -> None:
    """One progress line: how much, what share, how fast."""
    rate = done / elapsed / 1e6 if elapsed > 0 else 0.0
    share = f" ({100 * done / total:.0f}%)" if total else ""
    log.info("%s %s: %.1f MB%s at %.1f MB/s", verb, label, done / 1e6, share, rate)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_EXTENSION = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


def safe_filename(result_key: str, url: str) -> str:
    """A file name for result ``result_key`` that cannot leave the destination folder.

    The extension comes from the URL's path (``vocals`` + ``.../x.wav`` -> ``vocals.wav``).
    """
    stem = _UNSAFE.sub("_", result_key).strip("._") or "result"
    suffix = PurePosixPath(unquote(urlsplit(url).path)).suffix
    return stem[:120] + (suffix.lower() if _EXTENSION.match(suffix) else "")


def unique_names(names: Iterator[tuple[str, str]]) -> dict[str, str]:
    """Map each key to its file name, adding ``-2``, ``-3``... where two keys would collide."""
    taken: set[str] = {"result.json"}
    chosen: dict[str, str] = {}
    for key, name in names:
        candidate, number = name, 1
        while candidate.lower() in taken:
            number += 1
            stem, dot, ext = name.partition(".")
            candidate = f"{stem}-{number}{dot}{ext}"
        taken.add(candidate.lower())
        chosen[key] = candidate
    return chosen


def temporary_name(final_name: str) -> str:
    """A hidden sibling name that a crash leaves recognisable and that never clashes."""
    return f".{final_name}.{uuid.uuid4().hex[:12]}.part"
