"""Where downloaded results go: a local folder or any fsspec/ObjectStoragePath location.

Every file is written under a temporary hidden name and renamed into place only once complete,
so a reader never sees half a file and a failed download leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import unquote, urlsplit

from airflow_provider_musicai.exceptions import MusicAIInputError
from airflow_provider_musicai.hooks._transfer import temporary_name


class Destination(Protocol):
    """A folder that can receive files atomically."""

    label: str

    def atomic_writer(self, name: str) -> contextlib.AbstractContextManager[IO[bytes]]: ...

    def location(self, name: str) -> str: ...


def resolve_destination(destination: Any) -> Destination:
    """Accept a local folder (path or ``file://``), an fsspec URL or an ObjectStoragePath."""
    if hasattr(destination, "fs") and hasattr(destination, "path") and not isinstance(destination, str):
        return FsspecDestination(destination.fs, str(destination.path), str(destination).rstrip("/"))
    if isinstance(destination, str) and not destination.strip():
        raise MusicAIInputError("Download destination is an empty string")
    if isinstance(destination, str) and urlsplit(destination).scheme == "file":
        return LocalDestination(Path(unquote(urlsplit(destination).path)))
    if isinstance(destination, str) and "://" in destination:
        from fsspec.core import url_to_fs

        fs, path = url_to_fs(destination)
        return FsspecDestination(fs, path, destination.rstrip("/"))
    if isinstance(destination, (str, os.PathLike)):
        return LocalDestination(Path(destination))
    raise MusicAIInputError(
        "Download destination must be a folder path, URL or ObjectStoragePath, not "
        f"{type(destination).__name__}"
    )


class LocalDestination:
    """A local folder, created if missing."""

    def __init__(self, folder: Path) -> None:
        folder = folder.expanduser()
        if folder.exists() and not folder.is_dir():
            raise MusicAIInputError(f"Download destination {folder} exists and is not a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MusicAIInputError(
                f"Download destination {folder} cannot be created: {exc.strerror}"
            ) from None
        if not os.access(folder, os.W_OK):
            raise MusicAIInputError(f"Download destination {folder} is not writable")
        self.folder = folder.resolve()
        self.label = str(self.folder)

    def location(self, name: str) -> str:
        target = (self.folder / name).resolve()
        if target.parent != self.folder:  # defence in depth: names are already sanitised
            raise MusicAIInputError(f"Result file name {name!r} would leave {self.folder}")
        return str(target)

    @contextlib.contextmanager
    def atomic_writer(self, name: str) -> Iterator[IO[bytes]]:
        final = self.location(name)
        temporary = self.folder / temporary_name(name)
        try:
            with temporary.open("wb") as handle:
                yield handle
            os.replace(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)


class FsspecDestination:
    """A folder on any fsspec filesystem (S3, GCS, memory...), written then moved into place."""

    def __init__(self, fs: Any, path: str, label: str) -> None:
        self.fs = fs
        self.path = path.rstrip("/")
        self.label = label
        with contextlib.suppress(Exception):  # object stores have no real folders
            fs.makedirs(self.path, exist_ok=True)

    def location(self, name: str) -> str:
        return f"{self.label}/{name}"

    @contextlib.contextmanager
    def atomic_writer(self, name: str) -> Iterator[IO[bytes]]:
        temporary = f"{self.path}/{temporary_name(name)}"
        try:
            with self.fs.open(temporary, "wb") as handle:
                yield handle
            self.fs.mv(temporary, f"{self.path}/{name}")
        finally:
            with contextlib.suppress(FileNotFoundError, OSError):
                if self.fs.exists(temporary):
                    self.fs.rm(temporary)


def write_json(destination: Destination, name: str, values: Mapping[str, Any]) -> str:
    """Write ``values`` as pretty JSON, atomically, and return where it went."""
    with destination.atomic_writer(name) as handle:
        handle.write(json.dumps(values, indent=2, sort_keys=True).encode() + b"\n")
    return destination.location(name)
