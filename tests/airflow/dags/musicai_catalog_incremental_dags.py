"""An incremental catalog DAG for dag.test(): ``conf`` names the ``catalog``, ``destination`` and
``state`` folders; the trigger form's ``force`` param reprocesses tracks on demand."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_musicai.lineage import asset_class
from airflow_provider_musicai.operators.catalog import MusicAICatalogOperator

#: The Asset whose events name what each run changed.
RESULTS = asset_class()("file:///musicai/incremental-results")

for dag_id, deferrable in (
    ("musicai_catalog_incremental", False),
    ("musicai_catalog_incremental_deferred", True),
):
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        max_active_runs=1,
        default_args={"retries": 2, "retry_delay": timedelta(seconds=1)},
        params={"force": Param(False, type=["boolean", "string", "array"])},
    ) as dag:
        MusicAICatalogOperator(
            task_id="catalog",
            sources="{{ dag_run.conf['catalog'] }}",
            destination="{{ dag_run.conf['destination'] }}",
            state="{{ dag_run.conf['state'] }}",
            workflow="music-ai/stems-vocals-accompaniment",
            incremental=True,
            force="{{ params.force }}",
            max_in_flight=50,
            upload_concurrency=4,
            deferrable=deferrable,
            poll_interval=0.2,
            deferral_hold=0.0,
            outlets=[RESULTS],
        )
    globals()[dag_id] = dag
