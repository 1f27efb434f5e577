"""Catalogs whose source is an S3 prefix (moto in server mode, through an Airflow connection), and
incremental runs that check ``copy_results_to`` outputs on S3: both need ``s3fs`` (dev extra)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.airflow.test_lineage import with_datasets_registered
from tests.catalog.test_catalog_incremental import DAGS, QUICK, incremental, run, statuses
from tests.catalog.test_catalog_operator import catalog
from tests.helpers.airflow import load_dag_file, run_dag, task_states, xcom_value
from tests.helpers.audio import wav_bytes
from tests.helpers.s3 import BUCKET, CONN

pytest.importorskip("s3fs")

#: The catalog's prefix in the bucket, and the URL a (templated) ``sources`` names it by.
PREFIX = "catalog/"
SOURCE = f"s3://{CONN}@{BUCKET}/catalog"


def put_catalog(s3: Any, count: int) -> list[str]:
    """``count`` tiny WAVs under ``PREFIX`` in two "albums"; their keys."""
    keys = [f"{PREFIX}album{n % 2}/track{n:03d}.wav" for n in range(count)]
    data = wav_bytes(0.05, rate=8000)
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    return keys


@pytest.fixture
def recorder(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's request recorder: ``recorder()`` lists ``(method, key, query)`` of the S3 requests the
    server answered since the fixture started (moto writes the log to ``./moto_recording``, in
    ``tmp_path`` here: the server runs in this process)."""
    monkeypatch.chdir(tmp_path)
    api = f"{moto_endpoint}/moto-api/recorder"
    requests.post(f"{api}/reset-recording", timeout=30).raise_for_status()

    def recorded() -> list[tuple[str, str, str]]:
        text = requests.get(f"{api}/download-recording", timeout=30).text
        entries = [json.loads(line) for line in text.splitlines() if line.strip()]
        out = []
        for entry in entries:
            url = urlsplit(entry["url"])
            out.append((entry["method"], url.path.removeprefix(f"/{BUCKET}").lstrip("/"), url.query))
        return out

    yield recorded
    requests.post(f"{api}/stop-recording", timeout=30).raise_for_status()


def start_recording(moto_endpoint: str) -> None:
    requests.post(f"{moto_endpoint}/moto-api/recorder/start-recording", timeout=30).raise_for_status()


@pytest.mark.compat
@pytest.mark.musicai_config(max_concurrent_jobs=20, **QUICK)
def test_an_incremental_catalog_on_an_s3_prefix_pays_for_changed_objects_only(
    airflow_db: str, musicai: Any, s3: Any, moto_endpoint: str, recorder: Any, tmp_path: Path
) -> None:
    """dag.test() over ``s3://conn@bucket/catalog``: every object processed once; after one object
    is rewritten and one added, 2 jobs, decided from the listing's ETags: no unchanged object is
    read (GetObject) or even asked about (HeadObject) again."""
    dag = with_datasets_registered(load_dag_file(DAGS).musicai_catalog_incremental)
    keys = put_catalog(s3, 6)
    conf = {"catalog": SOURCE, "destination": str(tmp_path / "out"), "state": str(tmp_path / "state")}

    first_run = run_dag(dag, conf)
    assert set(task_states(first_run).values()) == {"success"}
    first = xcom_value(first_run, "catalog")
    assert (first["total"], first["processed"], first["succeeded"]) == (6, 6, 6)
    assert musicai.admin.counters()["jobs_created"] == 6
    assert sorted(statuses(first)) == sorted(key.removeprefix(PREFIX) for key in keys)
    for key in keys:  # downloaded results, one folder per track
        assert (tmp_path / "out" / key.removeprefix(PREFIX).removesuffix(".wav")).is_dir()

    changed, added = keys[2], f"{PREFIX}album9/new.wav"
    s3.put_object(Bucket=BUCKET, Key=changed, Body=wav_bytes(0.06, rate=8000))
    s3.put_object(Bucket=BUCKET, Key=added, Body=wav_bytes(0.05, rate=8000))
    start_recording(moto_endpoint)
    second_run = run_dag(dag, conf)
    assert set(task_states(second_run).values()) == {"success"}
    second = xcom_value(second_run, "catalog")
    assert musicai.admin.counters()["jobs_created"] == 8
    assert (second["total"], second["processed"], second["skipped"]) == (7, 2, 5)
    outcome = statuses(second)
    assert sorted(name for name, status in outcome.items() if status == "SUCCEEDED") == sorted(
        [changed.removeprefix(PREFIX), added.removeprefix(PREFIX)]
    )
    requested = recorder()
    # One listing per folder, then one GetObject per uploaded track: no unchanged object is read.
    objects = sorted((method, key) for method, key, _ in requested if key)
    assert objects == [("GET", changed), ("GET", added)], requested
    assert all("list-type=2" in query for _, key, query in requested if not key), requested


@pytest.mark.musicai_config(**QUICK)
def test_a_catalog_on_an_s3_prefix_processes_every_object_once(
    musicai: Any, make_context: Any, s3: Any, tmp_path: Path
) -> None:
    """Not incremental: the prefix is listed through the connection the URL names, each object once."""
    from tests.helpers.airflow import FakeTI

    keys = put_catalog(s3, 4)
    operator = catalog(sources=SOURCE, destination=str(tmp_path / "out"))
    summary = operator.execute(make_context(FakeTI(run_id="r1")))
    assert (summary["total"], summary["succeeded"]) == (4, 4)
    assert sorted(statuses(summary)) == sorted(key.removeprefix(PREFIX) for key in keys)
    assert musicai.admin.counters()["jobs_created"] == 4


@pytest.mark.musicai_config(**QUICK)
@pytest.mark.parametrize("named", ["in the URL", "as storage_conn_id"])
def test_copy_results_to_on_s3_outputs_are_checked_and_a_deleted_one_is_processed_again(
    named: str,
    musicai: Any,
    make_catalog: Any,
    make_context: Any,
    tmp_path: Path,
    s3: Any,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Outputs Music AI wrote to S3 (moto): an unchanged track whose outputs are there is skipped
    (no warning: they were looked at); one whose output was deleted is processed again. The
    connection is the one that presigned them: named in the URL, or ``storage_conn_id``."""
    folder = make_catalog(3)
    where: dict[str, Any] = {"copy_outputs": ["vocals", "accompaniments"]}
    if named == "in the URL":
        where["copy_results_to"] = f"s3://{CONN}@{BUCKET}/copied"
    else:
        where |= {"copy_results_to": f"s3://{BUCKET}/copied", "storage_conn_id": CONN}

    def once(run_id: str) -> dict[str, Any]:
        operator = incremental(folder, tmp_path, destination=None, manifest=str(tmp_path / run_id), **where)
        return run(operator, make_context, run_id)

    assert once("r1")["succeeded"] == 3
    copied = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="copied/")["Contents"])
    assert len(copied) == 6
    second = once("r2")
    assert (second["skipped"], second["processed"]) == (3, 0)
    assert musicai.admin.counters()["jobs_created"] == 3
    captured = capfd.readouterr()
    lines = [*(captured.out + captured.err).splitlines(), *(r.getMessage() for r in caplog.records)]
    assert not any("Cannot check the outputs" in line for line in lines)

    gone = next(key for key in copied if key.endswith("/vocals"))
    s3.delete_object(Bucket=BUCKET, Key=gone)
    third = once("r3")
    assert (third["skipped"], third["processed"], third["succeeded"]) == (2, 1, 1)
    assert musicai.admin.counters()["jobs_created"] == 4
    (again,) = [name for name, status in statuses(third).items() if status == "SUCCEEDED"]
    assert gone == f"copied/{again.removesuffix('.wav')}/vocals"
    assert s3.head_object(Bucket=BUCKET, Key=gone)["ContentLength"] > 0  # written again
