"""Incremental catalogs: a run pays only for tracks that are new, changed, failed before, forced
or whose outputs are gone; the processed-state survives crashes; two runs never both pay."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_musicai.exceptions import MusicAICatalogBusyError
from airflow_provider_musicai.operators._fingerprint import content_identity
from airflow_provider_musicai.operators._state import CatalogState
from airflow_provider_musicai.operators.catalog import MusicAICatalogOperator, force_patterns, forced
from tests.airflow.test_lineage import asset_event_extras, with_datasets_registered
from tests.catalog.test_catalog_operator import Crash, catalog, manifest_lines, run_deferred
from tests.helpers.airflow import FakeTI, load_dag_file, run_dag, task_states, xcom_value

QUICK = {"queued_seconds": 0.0, "processing_seconds": 0.0}
DAGS = Path(__file__).resolve().parents[1] / "airflow" / "dags" / "musicai_catalog_incremental_dags.py"


def incremental(folder: Any, out: Path, **kwargs: Any) -> MusicAICatalogOperator:
    kwargs.setdefault("destination", str(out / "results"))
    kwargs.setdefault("state", str(out / "state"))
    return catalog(sources=folder if isinstance(folder, list) else str(folder), incremental=True, **kwargs)


def run(operator: MusicAICatalogOperator, make_context: Any, run_id: str, **kwargs: Any) -> dict[str, Any]:
    return operator.execute(make_context(FakeTI(run_id=run_id), **kwargs))  # type: ignore[no-any-return]


def statuses(summary: dict[str, Any]) -> dict[str, str]:
    return {line["source"]: line["status"] for line in manifest_lines(summary)}


def state_lines(folder: Path) -> list[dict[str, Any]]:
    """The state as the next run reads it (compacted)."""
    snapshot = CatalogState(str(folder)).compact()
    return [json.loads(line) for line in Path(str(snapshot)).read_text().splitlines()]


def rewrite(path: Path) -> None:
    """New bytes (a changed track)."""
    path.write_bytes(path.read_bytes() + b"\0\0")


@pytest.mark.compat
@pytest.mark.musicai_config(max_concurrent_jobs=50, **QUICK)
@pytest.mark.parametrize("dag_id", ["musicai_catalog_incremental", "musicai_catalog_incremental_deferred"])
def test_three_runs_pay_only_for_new_and_changed_tracks(
    airflow_db: str, musicai: Any, make_catalog: Any, tmp_path: Path, dag_id: str
) -> None:
    """The issue's scenario: 200 tracks; 10 rewritten and 5 added -> 15 jobs; nothing -> 0 jobs."""
    dag = with_datasets_registered(getattr(load_dag_file(DAGS), dag_id))
    folder = make_catalog(200)
    conf = {"catalog": str(folder), "destination": str(tmp_path / "out"), "state": str(tmp_path / "state")}

    def once() -> tuple[Any, dict[str, Any], int, int]:
        before = musicai.admin.counters()
        dag_run = run_dag(dag, conf)
        assert set(task_states(dag_run).values()) == {"success"}
        after = musicai.admin.counters()
        created = after["jobs_created"] - before["jobs_created"]
        return (
            dag_run,
            xcom_value(dag_run, "catalog"),
            created,
            after["requests_total"] - before["requests_total"],
        )

    _, first, created, _ = once()
    assert (first["processed"], first["skipped"], created) == (200, 0, 200)
    tracks = sorted(folder.rglob("*.wav"))
    for path in tracks[:10]:
        rewrite(path)
    for n in range(5):
        (folder / "album9" / f"new{n}.wav").parent.mkdir(exist_ok=True)
        (folder / "album9" / f"new{n}.wav").write_bytes(tracks[0].read_bytes())
    dag_run, second, created, _ = once()
    assert created == 15
    assert (second["total"], second["processed"], second["succeeded"], second["skipped"]) == (
        205,
        15,
        15,
        190,
    )
    outcome = statuses(second)
    assert sorted(name for name, status in outcome.items() if status == "SUCCEEDED") == sorted(
        [str(p.relative_to(folder)) for p in tracks[:10]] + [f"album9/new{n}.wav" for n in range(5)]
    )
    assert len(outcome) == 205 and list(outcome.values()).count("SKIPPED") == 190
    (extra,) = asset_event_extras("file:///musicai/incremental-results", dag_run)
    assert extra["musicai_catalog"]["processed"] == 15
    assert sorted(extra["musicai_catalog"]["changed"]) == sorted(
        name for name, status in outcome.items() if status == "SUCCEEDED"
    )
    _, third, created, requests = once()
    assert (third["processed"], third["skipped"], created) == (0, 205, 0)
    assert requests <= 5, requests  # none: every track is decided from the state and the listing


@pytest.mark.musicai_config(**QUICK)
def test_a_touched_file_is_hashed_once_and_not_processed(
    musicai: Any, make_catalog: Any, make_context: Any, tmp_path: Path
) -> None:
    folder = make_catalog(4)
    run(incremental(folder, tmp_path), make_context, "r1")
    path = sorted(folder.rglob("*.wav"))[0]
    os.utime(path, (1_000_000_000, 1_000_000_000))  # same bytes, another mtime
    summary = run(incremental(folder, tmp_path), make_context, "r2")
    assert (summary["processed"], summary["skipped"]) == (0, 4)
    line = next(
        line for line in state_lines(tmp_path / "state") if line["source"] == str(path.relative_to(folder))
    )
    assert line["mtime"] == 1_000_000_000 and line["content"].startswith(
        "sha256:"
    )  # refreshed: not read again
    assert musicai.admin.counters()["jobs_created"] == 4


@pytest.mark.musicai_config(**QUICK)
def test_failed_tracks_and_tracks_whose_outputs_are_gone_run_again(
    musicai: Any, make_catalog: Any, make_context: Any, tmp_path: Path
) -> None:
    folder = make_catalog(6)
    musicai.admin.fail_jobs(1, code="TIMEOUT")
    first = run(incremental(folder, tmp_path, max_failed_fraction=1.0, max_in_flight=1), make_context, "r1")
    assert (first["succeeded"], first["failed"]) == (5, 1)
    failed = [name for name, status in statuses(first).items() if status == "FAILED"]
    gone = next(name for name, status in statuses(first).items() if status == "SUCCEEDED")
    outputs = next(line["outputs"] for line in manifest_lines(first) if line["source"] == gone)
    Path(next(iter(outputs.values()))).unlink()
    second = run(incremental(folder, tmp_path), make_context, "r2")
    assert sorted(n for n, s in statuses(second).items() if s == "SUCCEEDED") == sorted([*failed, gone])
    assert (second["processed"], second["skipped"]) == (2, 4)
    assert musicai.admin.counters()["jobs_created"] == 8


@pytest.mark.musicai_config(**QUICK)
def test_a_changed_request_or_force_processes_again(
    musicai: Any, make_catalog: Any, make_context: Any, tmp_path: Path
) -> None:
    folder = make_catalog(4)
    run(incremental(folder, tmp_path), make_context, "r1")
    moved = {"destination": str(tmp_path / "elsewhere")}  # a part of the request, as workflow or params
    assert run(incremental(folder, tmp_path, **moved), make_context, "r2")["processed"] == 4
    assert run(incremental(folder, tmp_path, **moved), make_context, "r3")["processed"] == 0
    forced_run = run(incremental(folder, tmp_path, **moved, force="album1/*"), make_context, "r4")
    assert sorted(n for n, s in statuses(forced_run).items() if s == "SUCCEEDED") == [
        "album1/track000001.wav",
        "album1/track000003.wav",
    ]
    every = run(incremental(folder, tmp_path, **moved, force="True"), make_context, "r5")
    assert every["processed"] == 4
    assert musicai.admin.counters()["jobs_created"] == 4 + 4 + 2 + 4


def test_force_accepts_what_a_template_renders() -> None:
    assert force_patterns("False") is False and force_patterns("") is False and force_patterns(True) is True
    assert force_patterns("['a.wav', 'b/*']") == ["a.wav", "b/*"]
    assert force_patterns("a.wav, b/*") == ["a.wav", "b/*"]
    assert forced(["b/*"], "b/x.wav") and not forced(["b/*"], "a.wav") and forced("a.wav", "a.wav")


@pytest.mark.musicai_config(**QUICK)
def test_removed_tracks_are_reported_and_pruned_only_when_asked(
    musicai: Any, make_catalog: Any, make_context: Any, tmp_path: Path
) -> None:
    folder = make_catalog(4)
    first = run(incremental(folder, tmp_path), make_context, "r1")
    outputs = {line["source"]: line["outputs"] for line in manifest_lines(first)}
    (folder / "album0" / "track000000.wav").unlink()
    (folder / "album1" / "track000003.wav").unlink()  # the last track: found once the walk ended
    second = run(incremental(folder, tmp_path), make_context, "r2")
    assert (second["removed"], second["skipped"], second["processed"]) == (2, 2, 0)
    assert statuses(second)["album0/track000000.wav"] == "REMOVED"
    assert all(Path(p).exists() for p in outputs["album0/track000000.wav"].values())  # kept
    third = run(incremental(folder, tmp_path), make_context, "r3")
    assert third["removed"] == 0  # forgotten once reported
    (folder / "album0" / "track000002.wav").unlink()
    pruned = run(incremental(folder, tmp_path, prune_removed=True), make_context, "r4")
    assert pruned["removed"] == 1
    assert not any(Path(p).exists() for p in outputs["album0/track000002.wav"].values())
    assert musicai.admin.counters()["jobs_created"] == 4


@pytest.mark.musicai_config(max_concurrent_jobs=4, **QUICK)
def test_deferred_and_list_sources_skip_unchanged_tracks(
    musicai: Any, make_catalog: Any, make_context: Any, tmp_path: Path
) -> None:
    folder = make_catalog(12)
    sources = [str(path) for path in sorted(folder.rglob("*.wav"))]
    summary, _ = run_deferred(
        incremental(sources, tmp_path, max_in_flight=3, deferrable=True), make_context()
    )
    assert summary["processed"] == 12
    rewrite(Path(sources[5]))
    context = make_context(FakeTI(run_id="r2"))
    summary, triggers = run_deferred(
        incremental(sources, tmp_path, max_in_flight=3, deferrable=True), context
    )
    assert (summary["processed"], summary["skipped"], len(triggers)) == (1, 11, 1)
    assert musicai.admin.counters()["jobs_created"] == 13


@pytest.mark.musicai_config(max_concurrent_jobs=3, **QUICK)
def test_a_crashed_run_records_what_finished_and_its_retry_pays_for_nothing_twice(
    musicai: Any, make_catalog: Any, make_context: Any, tmp_path: Path
) -> None:
    folder = make_catalog(20)
    first = incremental(folder, tmp_path, max_in_flight=6)
    original, recorded = first._record, []

    def record_then_die(*args: Any) -> None:
        original(*args)
        recorded.append(1)
        if len(recorded) == 2:
            raise Crash

    first._record = record_then_die  # type: ignore[method-assign]
    ti = FakeTI(run_id="r1")
    with pytest.raises(Crash):
        first.execute(make_context(ti))
    assert 0 < musicai.admin.counters()["jobs_created"] < 20
    assert list((tmp_path / "state").glob("part-*.jsonl"))  # what finished is recorded
    with pytest.raises(MusicAICatalogBusyError):  # another run meanwhile: the lease stops it
        run(incremental(folder, tmp_path), make_context, "r2")
    ti.try_number = 2
    summary = incremental(folder, tmp_path, max_in_flight=6).execute(make_context(ti))
    assert (summary["succeeded"], summary["failed"]) == (20, 0)
    assert musicai.admin.counters()["jobs_created"] == 20  # not one duplicate
    assert not (tmp_path / "state" / "lease.json").exists()
    assert run(incremental(folder, tmp_path), make_context, "r3")["skipped"] == 20
    assert musicai.admin.counters()["jobs_created"] == 20
    assert len(state_lines(tmp_path / "state")) == 20 and not list((tmp_path / "state").glob("part-*"))


@pytest.mark.musicai_config(**QUICK)
def test_a_stale_lease_is_taken_over(
    musicai: Any, make_catalog: Any, make_context: Any, tmp_path: Path
) -> None:
    folder = make_catalog(2)
    CatalogState(str(tmp_path / "state")).acquire("dag/gone/catalog/-1", timeout=60)
    with pytest.raises(MusicAICatalogBusyError, match="dag/gone"):
        run(incremental(folder, tmp_path), make_context, "r1")
    assert musicai.admin.counters()["jobs_created"] == 0
    assert run(incremental(folder, tmp_path, lease_timeout=0), make_context, "r1")["processed"] == 2


def test_a_stored_checksum_is_used_without_reading_the_file() -> None:
    """S3 ETags (multipart too) and Cloud Storage MD5/CRC32C come from the listing: nothing read."""
    unreadable = "/nonexistent/never-read.wav"
    for info, content in (
        ({"size": 3, "ETag": '"abc"'}, "etag:abc"),
        ({"size": 3, "ETag": '"abc-12"'}, "etag:abc-12"),
        ({"size": 3, "md5Hash": "q1w2=="}, "md5:q1w2=="),
        ({"size": 3, "crc32c": "AAAA"}, "crc32c:AAAA"),
    ):
        assert content_identity(unreadable, info, None)["content"] == content
    with pytest.raises(FileNotFoundError):  # no stored checksum: the file is read
        content_identity(unreadable, {"size": 3, "mtime": 1.0}, None)
    previous = {"size": 3, "mtime": 1.0, "content": "sha256:x"}
    assert content_identity(unreadable, {"size": 3, "mtime": 1.0}, previous)["content"] == "sha256:x"


def test_compaction_merges_parts_in_order_and_drops_removed_tracks(tmp_path: Path) -> None:
    state = CatalogState(str(tmp_path))
    state.write([{"source": "b", "v": 1}, {"source": "a", "v": 1}, {"source": "c", "v": 1}])
    state.write([{"source": "b", "v": 2}, {"source": "c", "removed": True}])
    first = state.compact()
    assert first is not None and not list(tmp_path.glob("part-*"))
    lines = [json.loads(line) for line in Path(first).read_text().splitlines()]
    assert lines == [{"source": "a", "v": 1}, {"source": "b", "v": 2}]
    state.write([{"source": "0", "v": 3}])
    second = state.compact()
    assert [json.loads(line)["source"] for line in Path(str(second)).read_text().splitlines()] == [
        "0",
        "a",
        "b",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [Path(str(second)).name]
    reader = state.reader(second)
    assert reader.lookup("a") == ({"source": "a", "v": 1}, [{"source": "0", "v": 3}])
    resumed = state.reader(second, reader.offset)  # a wake-up resumes at the byte offset
    assert [line["source"] for line in resumed.rest()] == ["b"]
