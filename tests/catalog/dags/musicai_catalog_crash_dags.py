"""Catalog runs for the crash tests: on the worker (killed with SIGKILL), deferred (triggerer
restarted) and incremental (worker killed). ``conf``: ``catalog`` and ``manifest`` (folders), and
``state`` (a folder) for the incremental one."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_musicai.operators.catalog import MusicAICatalogOperator

RUNS = (
    ("musicai_catalog_worker_kill", False, False),
    ("musicai_catalog_deferred", True, False),
    ("musicai_catalog_incremental_kill", False, True),
)
for dag_id, deferrable, incremental in RUNS:
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
            incremental=incremental,
            state="{{ dag_run.conf.get('state') }}" if incremental else None,
        )
    globals()[dag_id] = dag
