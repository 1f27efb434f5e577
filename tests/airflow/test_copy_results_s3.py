"""``copy_results_to`` end to end on a real S3 API: moto in server mode on loopback, an Airflow AWS
connection, the emulator PUTting each output to the URL the Amazon provider presigned; then the
example pair of DAGs (a producer writing stems to S3, a consumer scheduled on the Asset).

Needs the ``[amazon]`` extra and ``moto[server]`` (the dev extra): skipped without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

pytest.importorskip("airflow.providers.amazon.aws.hooks.s3")
moto_server = pytest.importorskip("moto.server")

from airflow_provider_musicai.copy_results import copy_targets  # noqa: E402
from airflow_provider_musicai.hooks._presign import presign  # noqa: E402
from tests.airflow.test_lineage import asset_event_extras, with_datasets_registered  # noqa: E402
from tests.helpers.airflow import load_dag_file, run_dag, task_states, xcom_value  # noqa: E402
from tests.helpers.copy_results import STEMS, assert_outputs_copied_whole  # noqa: E402
from tests.helpers.s3 import BUCKET, CONN, s3_object  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "example_musicai_stems_to_s3.py"


def test_the_presigned_put_signs_only_the_host(s3: Any) -> None:
    """The emulator (like any HTTP client) sends its own Content-Type: it must not be signed."""
    (target,) = copy_targets({"vocals": f"s3://{CONN}@{BUCKET}/a/vocals.wav"}).values()
    query = parse_qs(urlsplit(presign(target)).query)
    assert query["X-Amz-SignedHeaders"] == ["host"] and query["X-Amz-Signature"]


def test_outputs_land_in_the_bucket_whole(
    s3: Any, musicai: Any, hook: Any, wav_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert_outputs_copied_whole(
        hook,
        wav_file,
        tmp_path,
        f"s3://{BUCKET}/run1/",
        lambda name: s3_object(s3, f"run1/{name}"),
        storage_conn_id=CONN,
    )
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="run1/")["Contents"])
    assert keys == ["run1/accompaniments", "run1/vocals"]
    # Our records only: moto's own access log (werkzeug) shows the URLs it was sent.
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("werkzeug")]
    assert ours and not any("X-Amz-Signature" in message for message in ours)


def test_the_operator_returns_destinations_and_downloads_skip_them(
    s3: Any, musicai: Any, input_url: Any, make_context: Any, tmp_path: Path
) -> None:
    from airflow_provider_musicai.operators.musicai import (
        MusicAICreateJobOperator,
        MusicAIDownloadResultsOperator,
    )
    from tests.helpers.airflow import FakeTI

    operator = MusicAICreateJobOperator(
        task_id="stems",
        name="stems",
        workflow=STEMS,
        workflow_params={"inputUrl": input_url()},
        copy_results_to={"vocals": f"s3://{CONN}@{BUCKET}/op/vocals.wav"},
        poll_interval=0.2,
        deferrable=False,
    )
    assert [a.uri for a in operator.outlets] == [f"s3://{BUCKET}/op/vocals.wav"]
    job = operator.execute(make_context(FakeTI()))
    assert job["result"]["vocals"] == f"s3://{BUCKET}/op/vocals.wav"
    assert job["result"]["accompaniments"] == f"musicai-result://{job['id']}/accompaniments"
    assert s3_object(s3, "op/vocals.wav")[:4] == b"RIFF"
    download = MusicAIDownloadResultsOperator(task_id="d", job_id=job, destination=str(tmp_path))
    assert set(download.execute(make_context(FakeTI()))) == {"accompaniments"}


@pytest.mark.usefixtures("airflow_db")
def test_the_example_writes_stems_to_s3_and_records_an_asset_event(
    s3: Any, musicai: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUSICAI_EXAMPLE_STEMS_FOLDER", f"s3://{BUCKET}/example")
    monkeypatch.setenv("MUSICAI_EXAMPLE_AWS_CONN_ID", CONN)
    monkeypatch.setenv("MUSICAI_EXAMPLE_POLL_INTERVAL", "0.2")
    module = load_dag_file(EXAMPLE)
    dag_run = run_dag(with_datasets_registered(module.dag))
    assert set(task_states(dag_run).values()) == {"success"}, task_states(dag_run)
    job = xcom_value(dag_run, "separate_stems")
    stems = job["result"]
    assert sorted(stems) == ["accompaniments", "vocals"]
    assert all(uri.startswith(f"s3://{BUCKET}/example/") for uri in stems.values()), stems
    for uri in stems.values():
        assert s3_object(s3, urlsplit(uri).path.lstrip("/"))[:4] == b"RIFF"
    (extra,) = asset_event_extras(f"s3://{BUCKET}/example", dag_run)
    assert extra["musicai_job_id"] == job["id"] and extra["files"] == stems
    assert module.consumer.dag_id == "example_musicai_stems_consumer"
