"""DAGs run by ``tests/airflow/test_retry_policy.py``: tasks with ``musicai_retry_policy()``
(Airflow 3.3+; on older Airflow this file defines no DAG)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow_provider_musicai.hooks.musicai import MusicAIHook
from airflow_provider_musicai.operators.musicai import MusicAICreateJobOperator

STEMS = "music-ai/stems-vocals-accompaniment"

try:
    from airflow.sdk import DAG, RetryPolicy, task  # noqa: F401  # RetryPolicy: Airflow 3.3+ only
except ImportError:
    pass
else:
    from airflow_provider_musicai.retry import musicai_retry_policy

    RETRYING: dict[str, Any] = {
        "retries": 2,
        "retry_delay": timedelta(0),
        "retry_policy": musicai_retry_policy(),
    }

    with DAG(
        "musicai_test_retry_policy", schedule=None, start_date=datetime(2025, 1, 1), params={"job": {}}
    ) as retry_policy:

        @task(**RETRYING)
        def app() -> str:
            """Reads the application: the transient-error and rate-limit cases."""
            return str(MusicAIHook().get_application()["id"])

        app()
        # Creates a job from the run's params: the bad-input case.
        MusicAICreateJobOperator(
            task_id="job", name="policy", workflow=STEMS, workflow_params="{{ params.job }}", **RETRYING
        )
