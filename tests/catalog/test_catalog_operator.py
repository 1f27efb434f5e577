"""MusicAICatalogOperator on the emulator: every track once, a bounded window, failures recorded,
resumption without a second job, and the deferred loop with one trigger for the whole window."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_musicai.exceptions import MusicAICatalogFailedError
from airflow_provider_musicai.operators.catalog import MusicAICatalogOperator
from airflow_provider_musicai.triggers.catalog import MusicAICatalogTrigger
from tests.helpers.airflow import FakeStateStore, FakeTI

STEMS = "music-ai/stems-vocals-accompaniment"
QUICK = {"queued_seconds": 0.0, "processing_seconds": 0.0}


def catalog(**kwargs: Any) -> MusicAICatalogOperator:
    kwargs.setdefault("poll_interval", 0.1)
    kwargs.setdefault("deferral_hold", 0.0)  # run_deferred has no scheduler to race (test_catalog_trigger)
    return MusicAICatalogOperator(task_id="catalog", workflow=STEMS, **kwargs)


def manifest_lines(summary: dict[str, Any]) -> list[dict[str, Any]]:
    lines = []
    for part in sorted(Path(summary["manifest"]).glob("part-*.jsonl")):
        lines += [json.loads(line) for line in part.read_text().splitlines()]
    return lines


def run_deferred(operator: MusicAICatalogOperator, context: dict[str, Any]) -> tuple[Any, list[Any]]:
    """Drive the operator as Airflow does: execute, run each trigger, resume, until it returns."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    triggers: list[Any] = []

    async def fire(trigger: MusicAICatalogTrigger) -> Any:
        events = [event.payload async for event in trigger.run()]
        assert len(events) == 1
        return events[0]

    step: Callable[[], Any] = lambda: operator.execute(context)  # noqa: E731
    while True:
        try:
            return step(), triggers
        except TaskDeferred as deferred:
            triggers.append(deferred.trigger.serialize())
            event = asyncio.run(fire(deferred.trigger))
            kwargs = deferred.kwargs or {}
            step = lambda e=event, k=kwargs: operator.execute_complete(context, e, **k)  # noqa: E731


@pytest.mark.musicai_config(max_concurrent_jobs=2, **QUICK)
def test_every_track_gets_one_job_and_a_manifest_line(
    musicai: Any, make_catalog: Any, make_context: Any, tmp_path: Path
) -> None:
    folder = make_catalog(9)
    summary = catalog(sources=str(folder), destination=str(tmp_path / "out"), max_in_flight=3).execute(
        make_context()
    )
    assert summary["total"] == 9 and summary["succeeded"] == 9 and summary["failed"] == 0
    lines = manifest_lines(summary)
    assert sorted(line["source"] for line in lines) == sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*.wav")
    )
    assert all(line["status"] == "SUCCEEDED" for line in lines)
    assert Path(lines[0]["outputs"]["vocals"]).is_file()
    assert (tmp_path / "out" / "album0" / "track000000").is_dir()
    assert musicai.admin.counters()["jobs_created"] == 9
    assert "?" not in json.dumps(lines)  # no signed URL in the manifest


@pytest.mark.musicai_config(**QUICK)
def test_failed_tracks_are_recorded_and_the_others_go_on(
    musicai: Any, make_catalog: Any, make_context: Any, tmp_path: Path
) -> None:
    folder = make_catalog(6)
    missing = str(tmp_path / "nowhere.wav")
    musicai.admin.fail_jobs(2, code="BAD_INPUT")
    sources = [str(p) for p in sorted(folder.rglob("*.wav"))] + [missing]
    summary = catalog(sources=sources, manifest=str(tmp_path / "m"), max_failed_fraction=0.5).execute(
        make_context()
    )
    assert (summary["total"], summary["succeeded"], summary["failed"]) == (7, 4, 3)
    errors = sorted(line["error"]["code"] for line in manifest_lines(summary) if line["error"])
    assert errors == ["BAD_INPUT", "BAD_INPUT", "BAD_SOURCE"]
    assert musicai.admin.counters()["jobs_created"] == 6  # BAD_INPUT is not retried


@pytest.mark.musicai_config(**QUICK)
def test_too_many_failures_fail_the_task_after_every_track(
    musicai: Any, make_catalog: Any, make_context: Any, tmp_path: Path
) -> None:
    musicai.admin.fail_jobs(1, code="TIMEOUT")
    with pytest.raises(MusicAICatalogFailedError) as caught:
        catalog(sources=str(make_catalog(4)), manifest=str(tmp_path / "m")).execute(make_context())
    assert (caught.value.failed, caught.value.total) == (1, 4)
    assert len(list((tmp_path / "m").glob("part-*.jsonl"))) >= 1


@pytest.mark.musicai_config(max_concurrent_jobs=4, **QUICK)
def test_the_log_has_a_line_per_batch_not_per_track(
    musicai: Any,
    make_catalog: Any,
    make_context: Any,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each upload and job creation logged a line at INFO: 200,000 lines for 100,000 tracks."""
    caplog.set_level(logging.INFO)
    folder = make_catalog(24)
    summary = catalog(sources=str(folder), manifest=str(tmp_path / "m"), max_in_flight=4).execute(
        make_context()
    )
    assert summary["succeeded"] == 24
    captured = capfd.readouterr()
    lines = [*(captured.out + captured.err).splitlines(), *(r.getMessage() for r in caplog.records)]
    per_track = [line for line in lines if "Created Music AI job" in line or "Uploaded " in line]
    assert [line for line in per_track if "debug" not in line.lower()] == []
    assert sum("Catalog: " in line and "job(s) created" in line for line in lines) >= 6  # 24 / 4


@pytest.mark.musicai_config(**QUICK)
def test_the_wait_on_the_worker_hands_over_finished_jobs_and_a_deleted_one_as_gone(
    musicai: Any, hook: Any, input_url: Callable[..., str], tmp_path: Path
) -> None:
    """Not deferred, the run waits with the deferred wait's own poller cycle: a job deleted behind
    its back is read to confirm it (never taken as final from a listing) and recorded FAILED GONE."""
    from tests.helpers.reliability import wait_until

    url = input_url()
    done, gone = (hook.create_job(name, STEMS, {"inputUrl": url}) for name in ("done", "gone"))
    wait_until("both jobs final", lambda: {hook.get_job(j)["status"] for j in (done, gone)} == {"SUCCEEDED"})
    hook.delete_job(gone)
    finished = catalog(sources=[], manifest=str(tmp_path / "m"))._wait_here({done: "a.wav", gone: "b.wav"})
    assert {job_id: outcome["status"] for job_id, outcome in finished.items()} == {
        done: "SUCCEEDED",
        gone: "FAILED",
    }
    assert finished[gone]["error"]["code"] == "GONE"
    assert "?" not in json.dumps(finished)  # results as references, never a signed URL


class Crash(BaseException):
    """The worker dies (not an exception the operator could handle)."""


class FailingStateStore:
    """A task state store whose every read and write fails: the run falls back to scanning."""

    def get(self, key: str, default: Any = None) -> Any:
        raise OSError("the task state store is unreachable")

    def set(self, key: str, value: Any, **_: Any) -> None:
        raise OSError("the task state store is unreachable")


@pytest.mark.parametrize("store_kind", ["scan", "state-store", "failing-store"])
@pytest.mark.musicai_config(max_concurrent_jobs=3, **QUICK)
def test_a_new_try_resumes_without_a_second_job(
    musicai: Any, make_catalog: Any, make_context: Any, tmp_path: Path, store_kind: str
) -> None:
    folder = make_catalog(20)
    store = {"scan": None, "state-store": FakeStateStore(), "failing-store": FailingStateStore()}[store_kind]
    first = catalog(sources=str(folder), manifest=str(tmp_path / "m"), max_in_flight=6)
    recorded = 0
    original = first._record

    def record_then_die(*args: Any) -> None:
        nonlocal recorded
        original(*args)
        recorded += 1
        if recorded == 2:
            raise Crash

    first._record = record_then_die  # type: ignore[method-assign]
    ti = FakeTI()
    with pytest.raises(Crash):
        first.execute(make_context(ti, store))
    created_before = musicai.admin.counters()["jobs_created"]
    assert 0 < created_before < 20
    ti.try_number = 2
    summary = catalog(sources=str(folder), manifest=str(tmp_path / "m"), max_in_flight=6).execute(
        make_context(ti, store)
    )
    assert (summary["total"], summary["succeeded"]) == (20, 20)
    assert musicai.admin.counters()["jobs_created"] == 20  # not one duplicate
    sources = [line["source"] for line in manifest_lines(summary)]
    assert sorted(sources) == sorted(set(sources)) and len(sources) == 20


@pytest.mark.musicai_config(max_concurrent_jobs=4, **QUICK)
def test_deferred_one_trigger_holds_only_the_window(
    musicai: Any, make_catalog: Any, make_context: Any, tmp_path: Path
) -> None:
    folder = make_catalog(30)
    operator = catalog(sources=str(folder), manifest=str(tmp_path / "m"), max_in_flight=5, deferrable=True)
    summary, triggers = run_deferred(operator, make_context())
    assert (summary["total"], summary["succeeded"]) == (30, 30)
    assert musicai.admin.counters()["jobs_created"] == 30
    assert len(triggers) >= 6
    assert all(len(kwargs["job_ids"]) <= 5 and len(kwargs["carry"]["window"]) <= 5 for _, kwargs in triggers)
    assert all(len(json.dumps(kwargs)) < 2_000 for _, kwargs in triggers)  # the window, not the catalog
    assert "http" not in json.dumps(triggers)
    assert {kwargs["hold"] for _, kwargs in triggers} == {0.0}
    # The next wake-up resumes the walk after the last track taken (a name, not a count).
    ordered = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.wav"))
    assert all(kwargs["carry"]["after"] == ordered[kwargs["carry"]["cursor"] - 1] for _, kwargs in triggers)


@pytest.mark.parametrize("release", ["current", "before-after"])
@pytest.mark.musicai_config(max_concurrent_jobs=4, **QUICK)
def test_a_deferred_run_resumes_from_the_carry_an_earlier_release_wrote(
    musicai: Any, make_catalog: Any, make_context: Any, tmp_path: Path, release: str
) -> None:
    """The trigger's carry as this release and the one before ``after`` wrote it (the keys they
    read): a worker of this release resumes it without a second job or a lost track."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    folder = make_catalog(6)
    context = make_context()
    with pytest.raises(TaskDeferred) as deferred:
        catalog(sources=str(folder), manifest=str(tmp_path / "m"), max_in_flight=2, deferrable=True).execute(
            context
        )
    carry = deferred.value.trigger.serialize()[1]["carry"]
    window = carry["window"]
    assert sorted(window.values()) == ["album0/track000000.wav", "album0/track000002.wav"]
    written: dict[str, Any] = {
        "cursor": 2,
        "after": "album0/track000002.wav",
        "window": window,
        "ahead": [],
        "succeeded": 0,
        "failed": 0,
        "skipped": 0,
        "removed": 0,
    }
    if release == "before-after":  # resumed by count
        written = {key: written[key] for key in ("cursor", "window", "ahead", "succeeded", "failed")}
    else:  # what this release writes still holds every key an earlier release reads
        assert {key: carry[key] for key in written} == written
    event = {"status": "finished", "finished": {}, "message": "", "carry": written}
    summary = catalog(sources=str(folder), manifest=str(tmp_path / "m"), max_in_flight=2).execute_complete(
        context, event
    )
    assert (summary["total"], summary["succeeded"], summary["failed"]) == (6, 6, 0)
    assert musicai.admin.counters()["jobs_created"] == 6
    sources = sorted(line["source"] for line in manifest_lines(summary))
    assert sources == sorted(str(p.relative_to(folder)) for p in folder.rglob("*.wav"))


def test_copy_results_to_places_each_track_in_its_folder(
    musicai: Any, make_catalog: Any, make_context: Any, tmp_path: Path, s3: Any
) -> None:
    """Music AI writes each track's outputs under ``<copy_results_to>/<track>/`` on a real S3 API."""
    from tests.helpers.s3 import BUCKET, CONN, s3_object

    operator = catalog(
        sources=str(make_catalog(2)),
        copy_results_to=f"s3://{CONN}@{BUCKET}/copied",
        copy_outputs=["vocals", "accompaniments"],
        manifest=str(tmp_path / "m"),
    )
    summary = operator.execute(make_context())
    assert summary["succeeded"] == 2
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="copied/")["Contents"])
    assert len(keys) == 4 and all(key.endswith(("/vocals", "/accompaniments")) for key in keys), keys
    assert all(s3_object(s3, key)[:4] == b"RIFF" for key in keys)
    assert all(line["outputs"]["folder"].endswith("/") for line in manifest_lines(summary))
