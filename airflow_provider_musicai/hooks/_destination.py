"""Where downloaded results go: a local folder or any fsspec/ObjectStoragePath location.

Every file is written under a temporary hidden name and renamed into place only once complete,
so a reader never sees half a file and a failed download leaves nothing behind. Renaming replaces
a symbolic link of the same name itself: links are never followed, their targets never written.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol
from urllib.parse import unquote, urlsplit

from airflow_provider_musicai.exceptions import MusicAIConfigurationError, MusicAIInputError


class Destination(Protocol):
    """A folder that can receive files atomically."""

    label: str

    def atomic_writer(
        self, name: str, *, overwrite: bool = True
    ) -> contextlib.AbstractContextManager[IO[bytes]]: ...

    def location(self, name: str) -> str: ...

    def existing(self, name: str) -> str | None:
        """What already sits at ``name`` ("a file", "a symbolic link", "a folder"), or None."""


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
        # Not resolved: a symbolic link at ``name`` is the entry replaced, never the file it names.
        if os.path.basename(name) != name or name in {"", ".", ".."}:  # names are already sanitised
            raise MusicAIInputError(f"Result file name {name!r} would leave {self.folder}")
        return str(self.folder / name)

    def existing(self, name: str) -> str | None:
        path = Path(self.location(name))
        if path.is_symlink():
            return "a symbolic link"
        if path.is_dir():
            return "a folder"
        return "a file" if path.exists() else None

    @contextlib.contextmanager
    def atomic_writer(self, name: str, *, overwrite: bool = True) -> Iterator[IO[bytes]]:
        final = self.location(name)
        temporary = self.folder / temporary_name(name)
        try:
            with temporary.open("wb") as handle:
                yield handle
            if overwrite:
                os.replace(temporary, final)
            else:  # a link fails if ``final`` appeared since it was checked: nothing is replaced
                try:
                    os.link(temporary, final, follow_symlinks=False)
                except FileExistsError:
                    raise MusicAIInputError(
                        f"Download destination already holds {final} (overwrite=False)"
                    ) from None
                except OSError:  # no hard links on this filesystem: check, then rename
                    if os.path.lexists(final):
                        raise MusicAIInputError(
                            f"Download destination already holds {final} (overwrite=False)"
                        ) from None
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

    def existing(self, name: str) -> str | None:
        path = f"{self.path}/{name}"
        if not self.fs.exists(path):
            return None
        return "a folder" if self.fs.isdir(path) else "a file"

    @contextlib.contextmanager
    def atomic_writer(self, name: str, *, overwrite: bool = True) -> Iterator[IO[bytes]]:
        temporary = f"{self.path}/{temporary_name(name)}"
        try:
            with self.fs.open(temporary, "wb") as handle:
                yield handle
            if not overwrite and self.existing(name):  # object stores have no "create only" move
                raise MusicAIInputError(
                    f"Download destination already holds {self.location(name)} (overwrite=False)"
                )
            self.fs.mv(temporary, f"{self.path}/{name}")
        finally:
            with contextlib.suppress(FileNotFoundError, OSError):
                if self.fs.exists(temporary):
                    self.fs.rm(temporary)


def overwrite_flag(value: Any) -> bool:
    """The ``overwrite`` argument as a bool: a rendered template "False" must not read as true."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0", "yes", "no"}:
        return value.strip().lower() in {"true", "1", "yes"}
    raise MusicAIConfigurationError(f"overwrite must be true or false, got {value!r}")


def check_existing(destination: Destination, names: list[str], overwrite: bool, log: Any) -> None:
    """Apply the overwrite policy to ``names`` before anything is downloaded: replacing is logged;
    with ``overwrite=False`` (and for a folder, always) an existing entry fails the call."""
    for name in names:
        found = destination.existing(name)
        if found is None:
            continue
        if found == "a folder" or not overwrite:
            reason = "a folder is never replaced" if found == "a folder" else "overwrite=False"
            raise MusicAIInputError(
                f"Download destination already holds {found} {destination.location(name)} ({reason}); "
                "nothing was downloaded"
            )
        log.info("Replacing %s %s (overwrite=True)", found, destination.location(name))


def write_json(
    destination: Destination, name: str, values: Mapping[str, Any], *, overwrite: bool = True
) -> str:
    """Write ``values`` as pretty, strict JSON, atomically, and return where it went.

    JSON has no NaN or Infinity: such numbers are written as the strings ``"NaN"``,
    ``"Infinity"`` and ``"-Infinity"`` (what the API sent, and what ``float()`` reads back).
    """
    text = json.dumps(_finite(values), indent=2, sort_keys=True, allow_nan=False)
    with destination.atomic_writer(name, overwrite=overwrite) as handle:
        handle.write(text.encode() + b"\n")
    return destination.location(name)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its name as a string."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {key: _finite(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(inner) for inner in value]
    return value


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
