"""Upload sources: a local path, a ``file://`` or fsspec URL, an ``ObjectStoragePath`` or a binary
file object, each opened as an :class:`UploadSource` of known size (read in blocks, never whole),
and the content type a file name implies.
"""

from __future__ import annotations

import contextlib
import io
import mimetypes
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from airflow_provider_musicai.exceptions import MusicAIInputError

#: Bytes copied at a time when a file object that cannot be measured is spooled to disk.
CHUNK_SIZE = 1 << 20

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
