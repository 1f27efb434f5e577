"""The DAG that tests/airflow/test_integration.py runs through a real scheduler and triggerer."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_musicai.operators.musicai import MusicAICreateJobOperator

with DAG(
    "musicai_integration",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    is_paused_upon_creation=False,
    params={"url": ""},
) as dag:
    MusicAICreateJobOperator(
        task_id="job",
        name="integration {{ run_id }}",
        workflow="music-ai/stems-vocals-accompaniment",
        workflow_params={"inputUrl": "{{ params.url }}"},
        deferrable=True,
        poll_interval=0.5,
        delete_on_kill=True,
    )
