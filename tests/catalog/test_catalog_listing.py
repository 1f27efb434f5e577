"""The catalog listing is streamed in the order of sorting every path (the cursor relies on it)."""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsspec.implementations.local import LocalFileSystem

from airflow_provider_musicai.operators._catalog import FinishedTracks, TrackStream, iter_tracks

NAMES = ["a-x.wav", "a/b.wav", "a/c/d.wav", "a0.wav", "a.wav", "b/z.wav", "b/a/y.wav", "c.wav"]


def _folder(root: Path) -> Path:
    for name in [*NAMES, ".hidden.wav", "_musicai_manifest/part-1.jsonl", "b/.skip/e.wav"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    return root


def test_a_folder_is_streamed_in_sorted_path_order_from_any_cursor(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "catalog")
    tracks = iter_tracks(str(folder))
    assert isinstance(tracks, types.GeneratorType)  # never a list of the whole catalog
    assert [t.name for t in tracks] == sorted(NAMES)
    assert [t.name for t in iter_tracks(str(folder), 3)] == sorted(NAMES)[3:]
    assert next(iter_tracks(str(folder))).source == f"{folder}/{sorted(NAMES)[0]}"


def test_resuming_after_a_name_yields_every_later_track_of_a_folder_or_a_list(tmp_path: Path) -> None:
    folder = str(_folder(tmp_path / "catalog"))
    ordered = sorted(NAMES)
    for after in [*ordered, "a/b.wav0", "a/zz.wav", "0", "zzz"]:  # taken tracks, and names since gone
        later = [name for name in ordered if name > after]
        assert [t.name for t in iter_tracks(folder, after=after)] == later, after
        assert [t.name for t in iter_tracks(ordered[::-1], start=99, after=after)] == later, after
    stream = TrackStream(folder, start=0, after="a/c/d.wav")
    assert stream.take().name == "a0.wav"


class _CountingFileSystem(LocalFileSystem):
    """The local file system, recording every folder it lists."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.listed: list[str] = []

    def ls(self, path: str, detail: bool = False, **kwargs: Any) -> Any:
        self.listed.append(path)
        return super().ls(path, detail=detail, **kwargs)


@dataclass
class _Folder:
    """A folder as ``ObjectStoragePath`` gives it: a file system and a path."""

    fs: _CountingFileSystem
    path: str

    def __truediv__(self, relative: str) -> str:
        return f"{self.path}/{relative}"


def test_resuming_after_a_name_lists_only_its_folders_and_the_later_ones(tmp_path: Path) -> None:
    """By count, each wake-up listed every folder before its position again (on an object store, a
    LIST request per 1,000 objects skipped: O(N^2) over a catalog)."""
    root = _folder(tmp_path / "catalog")
    for n in range(5):
        (root / f"0-early{n}" / "x.wav").parent.mkdir()
        (root / f"0-early{n}" / "x.wav").write_bytes(b"x")
    folder = _Folder(_CountingFileSystem(skip_instance_cache=True), str(root))  # a fresh instance
    names = [t.name for t in iter_tracks(folder, after="b/a/y.wav")]
    assert names == ["b/z.wav", "c.wav"]
    relative = [str(Path(path).relative_to(root)) for path in folder.fs.listed]
    assert relative == [".", "b", "b/a"]  # not a, a/c nor any 0-early folder
    folder.fs.listed.clear()
    assert len(list(iter_tracks(folder, start=12))) == 1  # by count: every folder listed again
    assert len(folder.fs.listed) == 10


def test_a_list_is_deduplicated_and_sorted_and_the_stream_tells_its_end(tmp_path: Path) -> None:
    stream = TrackStream(["b", "a", "b"], start=1)
    assert not stream.exhausted
    assert stream.take().name == "b"
    assert stream.exhausted
    assert list(iter_tracks(str(tmp_path / "missing"))) == []


def test_a_resumed_try_holds_the_manifest_in_8_bytes_a_track() -> None:
    """A dict of the manifest's names and statuses held ~160 bytes a track (16 MiB at 100,000)."""
    import tracemalloc

    count = 20_000

    def records() -> Any:
        for n in range(count):
            status = "FAILED" if n % 7 == 0 else "SUCCEEDED"
            yield {"source": f"album{n % 100:02d}/track{n:06d}.wav", "status": status, "job_id": "j" * 36}
        yield {"source": "album00/track000000.wav", "status": "FAILED"}  # the same track twice

    tracemalloc.start()
    try:
        finished = FinishedTracks(records())
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(finished) == count and finished.nbytes == 8 * (count + 1)
    assert held < 10 * count and peak < 40 * count, (held, peak)
    statuses = [finished.status(f"album{n % 100:02d}/track{n:06d}.wav") for n in range(count)]
    assert statuses == ["FAILED" if n % 7 == 0 else "SUCCEEDED" for n in range(count)]
    assert finished.status("album00/track999999.wav") is None and "nowhere.wav" not in finished
    assert "album01/track000001.wav" in finished and not FinishedTracks([])
