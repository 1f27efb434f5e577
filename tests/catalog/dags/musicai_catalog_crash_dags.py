"""Catalog runs for the crash tests: on the worker (killed with SIGKILL) and deferred (triggerer
restarted). ``conf``: ``catalog`` (a folder) and ``manifest`` (a folder)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_musicai.operators.catalog import MusicAICatalogOperator

for dag_id, deferrable in (("musicai_catalog_worker_kill", False), ("musicai_catalog_deferred", True)):
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        default_args={"retries": 2, "retry_delay": timedelta(seconds=1)},
    ) as dag:
        MusicAICatalogOperator(
            task_id="catalog",
            sources="{{ dag_run.conf['catalog'] }}",
            manifest="{{ dag_run.conf['manifest'] }}",
            workflow="music-ai/stems-vocals-accompaniment",
            max_in_flight=6,
            upload_concurrency=2,
            deferrable=deferrable,
            poll_interval=0.5,
        )
    globals()[dag_id] = dag
