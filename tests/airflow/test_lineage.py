"""Assets (Datasets on Airflow 2) events with the Music AI job in their extra, from a real DAG run;
OpenLineage facets and hook-level lineage when the OpenLineage provider is installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers.airflow import FakeTI, airflow_major, load_dag_file, run_dag, task_states, xcom_value
from tests.helpers.hostile import HostileServer, Reply

DAGS = Path(__file__).resolve().parent / "dags" / "musicai_lineage_dags.py"
STEMS = "music-ai/stems-vocals-accompaniment"


def with_datasets_registered(dag: Any) -> Any:
    """On Airflow 2, ``dag.test()`` records a dataset event only for a dataset already in the
    database (a scheduler's DAG parsing puts it there): write the DAG's datasets first."""
    if airflow_major() < 3:
        dag.sync_to_db()
    return dag


def asset_event_extras(uri: str, dag_run: Any) -> list[dict[str, Any]]:
    """The extras of the asset (dataset) events a DAG run's tasks emitted for ``uri``."""
    from airflow.utils.session import create_session

    if airflow_major() >= 3:
        from airflow.models.asset import AssetEvent as Event
        from airflow.models.asset import AssetModel as Model

        join = Event.asset_id == Model.id
    else:
        from airflow.models.dataset import DatasetEvent as Event
        from airflow.models.dataset import DatasetModel as Model

        join = Event.dataset_id == Model.id
    with create_session() as session:
        rows = (
            session.query(Event)
            .join(Model, join)
            .filter(Model.uri == uri, Event.source_run_id == dag_run.run_id)
            .all()
        )
        return [dict(row.extra or {}) for row in rows]


@pytest.mark.usefixtures("airflow_db")
def test_a_download_records_an_asset_event_with_the_job_and_files(
    musicai: Any, input_url: Any, tmp_path: Path
) -> None:
    dag = with_datasets_registered(load_dag_file(DAGS).lineage)
    dag_run = run_dag(dag, {"url": input_url(), "output_dir": str(tmp_path)})
    assert set(task_states(dag_run).values()) == {"success"}, task_states(dag_run)
    files = xcom_value(dag_run, "download")
    (extra,) = asset_event_extras("file:///musicai-lineage/stems", dag_run)
    assert extra == {"musicai_job_id": xcom_value(dag_run, "stems", key="job_id"), "files": files}
    assert sorted(files) == ["accompaniments", "vocals"]


def test_openlineage_facets_name_datasets_and_the_job_never_a_signed_url(
    musicai: Any, input_url: Any, make_context: Any, tmp_path: Path
) -> None:
    pytest.importorskip("airflow.providers.openlineage.extractors")
    from airflow_provider_musicai.operators.musicai import (
        MusicAICreateJobOperator,
        MusicAIDownloadResultsOperator,
        MusicAIUploadOperator,
    )

    track = tmp_path / "track.wav"
    from tests.helpers.audio import write_wav

    write_wav(track)
    upload = MusicAIUploadOperator(task_id="up", source=str(track))
    sealed = upload.execute(make_context(FakeTI()))
    first = MusicAICreateJobOperator(
        task_id="a", name="a", workflow=STEMS, workflow_params={"inputUrl": sealed}, poll_interval=0.2
    )
    job = first.execute(make_context(FakeTI()))
    second = MusicAICreateJobOperator(
        task_id="b",
        name="b",
        workflow=STEMS,
        workflow_params={"inputUrl": job["result"]["vocals"]},
        poll_interval=0.2,
    )
    second_job = second.execute(make_context(FakeTI()))
    download = MusicAIDownloadResultsOperator(task_id="d", job_id=second_job, destination=str(tmp_path / "o"))
    files = download.execute(make_context(FakeTI()))

    up = upload.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in up.inputs] == [("file", str(track))] and up.outputs == []
    made = second.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in made.inputs] == [("musicai", f"{job['id']}/vocals")]
    facet = made.run_facets["musicai"]
    assert (facet.jobId, facet.workflow) == (second_job["id"], STEMS) and facet.application
    got = download.get_openlineage_facets_on_complete(None)
    assert sorted(d.name for d in got.outputs) == sorted(files.values())
    assert {d.name for d in got.inputs} == {f"{second_job['id']}/{key}" for key in files}
    text = repr([up, made, got])
    assert "X-Amz" not in text and "Signature" not in text and "musicai-sealed" not in text


def test_uploads_and_downloads_report_hook_lineage(
    musicai: Any, hook: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow.providers.common.compat.sdk as compat_sdk
    from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

    from tests.helpers.audio import write_wav

    # A real collector, as Airflow makes when a hook lineage reader (e.g. OpenLineage) is registered.
    try:
        from airflow.sdk.lineage import HookLineageCollector
    except ImportError:  # Airflow 2
        from airflow.lineage.hook import HookLineageCollector
    real = HookLineageCollector()
    monkeypatch.setattr(compat_sdk, "get_hook_lineage_collector", lambda: real, raising=False)
    track = write_wav(tmp_path / "track.wav")
    job_id = hook.create_job("n", STEMS, {"inputUrl": hook.upload_file(str(track))})
    job = hook.wait_for_job(job_id, poll_interval=0.1, timeout=120)
    written = hook.download_results(job, str(tmp_path / "o"))
    lineage = get_hook_lineage_collector().collected_assets
    inputs = {entry.asset.uri for entry in lineage.inputs}
    outputs = {entry.asset.uri for entry in lineage.outputs}
    assert f"file://{track}" in inputs
    assert {f"file://{path}" for path in written.values()} <= outputs
    assert not any("?" in uri for uri in inputs | outputs)


def test_the_document_names_the_object_written_even_for_a_destination_read_differently_twice(
    musicai: Any, input_url: Any, make_context: Any
) -> None:
    """``copy_results_to`` is read once a run: what the hook sends the service is what the task's
    document (and with it its lineage) shows, even for a destination naming another object each read."""
    from airflow_provider_musicai.operators.musicai import MusicAICreateJobOperator

    class Shifting:
        """An ObjectStoragePath-like destination (a presigned http URL) that moves at each read."""

        protocol = "http"

        def __init__(self, host: str) -> None:
            self.bucket, self.reads = host, 0

        @property
        def key(self) -> str:
            self.reads += 1
            return f"stems/vocals-{self.reads}.wav"

    with HostileServer(lambda request: Reply(200)) as server:
        operator = MusicAICreateJobOperator(
            task_id="stems",
            name="stems",
            workflow=STEMS,
            workflow_params={"inputUrl": input_url()},
            copy_results_to={"vocals": Shifting(f"127.0.0.1:{server.port}")},
            poll_interval=0.2,
            deferrable=False,
        )
        job = operator.execute(make_context(FakeTI()))
        (put,) = server.requests_to("PUT", "/stems/")
    assert job["result"]["vocals"] == server.url(put.path)
