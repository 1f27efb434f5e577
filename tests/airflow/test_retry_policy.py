"""``musicai_retry_policy()``: Airflow 3.3's ``retry_policy`` for the provider's typed errors, run
through ``dag.test()`` against the emulator's faults; on older Airflow, a clear error instead."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_musicai.exceptions import MusicAIConfigurationError, MusicAIRateLimitError
from tests.helpers.airflow import TEST_DAGS, airflow_version, load_dag_file, run_dag, task_column, task_states

HAS_RETRY_POLICIES = tuple(int(part) for part in airflow_version().split(".")[:2]) >= (3, 3)

pytestmark = pytest.mark.usefixtures("airflow_db")
needs_retry_policies = pytest.mark.skipif(not HAS_RETRY_POLICIES, reason="retry policies are Airflow 3.3+")


def policy_dag() -> Any:
    """Tasks ``app`` (reads the application) and ``job`` (creates a job from the run's ``job``
    param), each with 2 retries, no delay, and ``musicai_retry_policy()``."""
    return load_dag_file(TEST_DAGS / "musicai_retry_policy_dags.py").retry_policy


def fault(kind: str, retry_after: int) -> dict[str, Any]:
    """``kind`` answered to the application read 3 times: beyond the hook's own retries (2)."""
    return {"match": "GET /v1/application", "fault": kind, "count": 3, "retry_after": retry_after}


def history(dag_run: Any, task_id: str) -> list[tuple[int, str | None, float | None]]:
    """(try, retry reason, retry delay override) of each earlier try of a task, in order."""
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(TaskInstanceHistory)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id)
            .order_by(TaskInstanceHistory.try_number)
            .all()
        )
        return [(r.try_number, r.retry_reason, r.retry_delay_override) for r in rows]


@needs_retry_policies
def test_bad_input_fails_at_once_and_a_transient_error_is_retried(musicai: Any) -> None:
    # The job's params do not fit the workflow: 422.
    musicai.admin.script_faults(
        {"match": "GET /v1/application", "fault": "503", "count": 3, "retry_after": 0}
    )
    dag_run = run_dag(policy_dag(), {"job": {"notAnInput": "x"}})

    assert task_states(dag_run) == {"app": "success", "job": "failed"}
    tries = task_column(dag_run, "try_number")
    assert tries == {"app": 2, "job": 1}  # job: not retried although retries=2
    ((_, reason, _),) = history(dag_run, "app")
    assert reason is not None and "MusicAIServerError: transient" in reason
    assert musicai.admin.counters()["jobs_created"] == 0


@needs_retry_policies
def test_a_rate_limit_is_retried_after_its_retry_after(musicai: Any) -> None:
    musicai.admin.script_faults(
        {"match": "GET /v1/application", "fault": "429", "count": 3, "retry_after": 1}
    )
    dag_run = run_dag(policy_dag(), {"job": {}})

    assert task_states(dag_run)["app"] == "success"
    ((_, reason, delay),) = history(dag_run, "app")
    assert delay == 1.0
    assert reason is not None and "Retry-After 1s" in reason


@needs_retry_policies
def test_a_long_retry_after_is_capped(hook: Any, musicai: Any) -> None:
    from airflow_provider_musicai.retry import musicai_retry_policy

    musicai.admin.script_faults(
        {"match": "GET /v1/application", "fault": "429", "count": 3, "retry_after": 0}
    )
    with pytest.raises(MusicAIRateLimitError) as raised:
        hook.get_application()
    assert raised.value.retry_after == 0
    raised.value.retry_after = 86400
    decision = musicai_retry_policy(max_rate_limit_delay=timedelta(minutes=5)).evaluate(raised.value, 1, 3)
    assert decision.action.value == "retry" and decision.retry_delay == timedelta(minutes=5)


@pytest.mark.compat
@pytest.mark.skipif(HAS_RETRY_POLICIES, reason="Airflow before 3.3 only")
def test_before_airflow_3_3_the_policy_names_the_version_it_needs() -> None:
    from airflow_provider_musicai.retry import musicai_retry_policy

    with pytest.raises(MusicAIConfigurationError, match=r"needs Airflow 3\.3 or later.*this is Airflow \d"):
        musicai_retry_policy()
