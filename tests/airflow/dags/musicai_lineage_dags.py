"""DAGs run by ``tests/airflow/test_lineage.py`` and ``tests/airflow/test_openlineage_events.py``: a
job whose results are downloaded into a folder declared as an Asset (a Dataset on Airflow 2) outlet;
upload, job and download, whose OpenLineage events a real run emits."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Asset

from airflow_provider_musicai.operators.musicai import (
    MusicAICreateJobOperator,
    MusicAIDownloadResultsOperator,
    MusicAIUploadOperator,
)

STEMS_ASSET = Asset("file:///musicai-lineage/stems")

with DAG(
    "musicai_test_lineage",
    params={"url": "", "output_dir": ""},
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
) as lineage:
    job = MusicAICreateJobOperator(
        task_id="stems",
        name="stems",
        workflow="music-ai/stems-vocals-accompaniment",
        workflow_params={"inputUrl": "{{ params.url }}"},
        poll_interval=0.3,
    )
    MusicAIDownloadResultsOperator(
        task_id="download",
        job_id=job.output["job_id"],
        destination="{{ params.output_dir }}",
        outlets=[STEMS_ASSET],
    )

with DAG(
    "musicai_test_openlineage",
    params={"source": "", "output_dir": ""},
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
) as openlineage:
    upload = MusicAIUploadOperator(task_id="upload", source="{{ params.source }}")
    stems = MusicAICreateJobOperator(
        task_id="stems",
        name="stems",
        workflow="music-ai/stems-vocals-accompaniment",
        workflow_params={"inputUrl": upload.output},
        poll_interval=0.3,
    )
    MusicAIDownloadResultsOperator(
        task_id="download", job_id=stems.output["job_id"], destination="{{ params.output_dir }}"
    )
