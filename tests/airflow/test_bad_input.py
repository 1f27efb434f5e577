"""A job that FAILED with BAD_INPUT fails its task without retries (another try would be another paid
job failing the same way), unless ``retry_on_bad_input=True``; on Airflow 3 and 2."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_musicai.exceptions import MusicAIBadInputError, MusicAIJobFailedError
from airflow_provider_musicai.operators.musicai import MusicAICreateJobOperator
from tests.helpers.airflow import TEST_DAGS, load_dag_file, run_dag, task_states

STEMS = "music-ai/stems-vocals-accompaniment"


def operator(**kwargs: Any) -> MusicAICreateJobOperator:
    return MusicAICreateJobOperator(task_id="t", name="n", workflow=STEMS, poll_interval=0.2, **kwargs)


def test_bad_input_fails_without_retry(musicai: Any, input_url: Any, make_context: Any) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    musicai.admin.fail_jobs(1, code="BAD_INPUT")
    with pytest.raises(MusicAIBadInputError) as caught:
        operator(workflow_params={"inputUrl": input_url()}).execute(make_context())
    assert isinstance(caught.value, AirflowFailException) and isinstance(caught.value, MusicAIJobFailedError)
    assert caught.value.code == "BAD_INPUT" and "Not retried" in str(caught.value)


@pytest.mark.parametrize(("code", "retry_on_bad_input"), [("BAD_INPUT", True), ("INTERNAL_ERROR", False)])
def test_other_failures_and_the_opt_in_stay_retryable(
    musicai: Any, input_url: Any, make_context: Any, code: str, retry_on_bad_input: bool
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    musicai.admin.fail_jobs(1, code=code)
    job = operator(workflow_params={"inputUrl": input_url()}, retry_on_bad_input=retry_on_bad_input)
    with pytest.raises(MusicAIJobFailedError) as caught:
        job.execute(make_context())
    assert caught.value.code == code and not isinstance(caught.value, AirflowFailException)


def test_a_deferred_bad_input_failure_is_not_retried(make_context: Any) -> None:
    job = {
        "id": "j1",
        "status": "FAILED",
        "error": {"code": "BAD_INPUT", "title": "Invalid input", "message": "x"},
    }
    event = {"status": "error", "job_id": "j1", "job": job, "message": "FAILED", "last_status": "FAILED"}
    with pytest.raises(MusicAIBadInputError):
        operator(workflow_params={}).execute_complete(make_context(), event)
    with pytest.raises(MusicAIJobFailedError) as caught:
        operator(workflow_params={}, retry_on_bad_input=True).execute_complete(make_context(), event)
    assert not isinstance(caught.value, MusicAIBadInputError)


@pytest.mark.parametrize(("dag_name", "jobs_created"), [("bad_input_default", 1), ("bad_input_retried", 3)])
def test_airflow_retries_bad_input_only_when_asked(
    airflow_db: str, musicai: Any, input_url: Any, dag_name: str, jobs_created: int
) -> None:
    url = input_url()
    musicai.admin.fail_jobs(5, code="BAD_INPUT")
    dag = getattr(load_dag_file(TEST_DAGS / "musicai_link_dags.py"), dag_name)
    dag_run = run_dag(dag, {"url": url})
    assert task_states(dag_run) == {"job": "failed"}
    assert musicai.admin.counters()["jobs_created"] == jobs_created  # a job per try; 1: no retry
