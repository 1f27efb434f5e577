"""``on_timeout``: a job whose wait timed out is kept when a retry will reattach to it and deleted on
the last try (or always kept / deleted when asked), waiting on a worker or deferred, through
``dag.test()``; the emulator tells whether the job still exists."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_musicai.operators.musicai import MusicAICreateJobOperator
from tests.helpers.airflow import FakeTI, airflow_major, load_test_dag, run_dag, task_states

pytestmark = pytest.mark.usefixtures("airflow_db")

STEMS = "music-ai/stems-vocals-accompaniment"


@pytest.fixture
def logs(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Any:
    """Everything the run logged (on Airflow 2 a console handler of an earlier test may write where
    capfd does not look, hence caplog too)."""
    return lambda: "".join(capfd.readouterr()) + caplog.text


@pytest.mark.compat
@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_auto_keeps_the_job_for_the_retry_and_deletes_it_on_the_last_try(
    musicai: Any, input_url: Any, logs: Any, deferrable: bool
) -> None:
    musicai.admin.configure(queued_seconds=600)
    dag = load_test_dag("timeout_auto_deferred" if deferrable else "timeout_auto_worker")
    dag_run = run_dag(dag, {"url": input_url()})
    assert task_states(dag_run) == {"job": "failed"}
    assert musicai.admin.counters()["jobs_created"] == 1  # the retry reattached
    assert musicai.admin.jobs() == []  # and the last try deleted the job
    text = logs()
    assert "kept: try 1 of 2, the next try reattaches" in text
    assert "deleted: timed out on the last try (2 of 2)" in text


def test_keep_keeps_the_job_of_the_last_try(musicai: Any, input_url: Any, logs: Any) -> None:
    musicai.admin.configure(queued_seconds=600)
    dag_run = run_dag(load_test_dag("timeout_keep"), {"url": input_url()})
    assert task_states(dag_run) == {"job": "failed"}
    (job,) = musicai.admin.jobs()
    assert f"Music AI job {job['id']} kept: on_timeout='keep'" in logs()


def test_delete_deletes_the_job_of_every_try(musicai: Any, input_url: Any, logs: Any) -> None:
    musicai.admin.configure(queued_seconds=600)
    dag_run = run_dag(load_test_dag("timeout_delete"), {"url": input_url()})
    assert task_states(dag_run) == {"job": "failed"}
    assert musicai.admin.counters()["jobs_created"] == 2  # the first job was gone: the retry made one
    assert musicai.admin.jobs() == []
    assert logs().count("deleted: timed out, on_timeout='delete'") == 2


def test_execution_timeout_on_a_worker_settles_the_job_instead_of_on_kill(
    musicai: Any, input_url: Any, logs: Any
) -> None:
    """Airflow raises AirflowTaskTimeout inside ``execute`` (a job read the emulator holds for 8 s),
    then calls ``on_kill``: the job is deleted once, as the last try's timeout, not as a kill."""
    musicai.admin.configure(queued_seconds=600)
    musicai.admin.script_faults({"match": "GET /v1/job/*", "fault": "slow", "count": 100, "seconds": 8})
    if airflow_major() >= 3:
        dag_run = run_dag(load_test_dag("execution_timeout"), {"url": input_url()})
        assert task_states(dag_run) == {"job": "failed"}
    else:  # Airflow 2.11's dag.test() re-raises the task's AirflowTaskTimeout
        from airflow.exceptions import AirflowTaskTimeout

        with pytest.raises(AirflowTaskTimeout):
            run_dag(load_test_dag("execution_timeout"), {"url": input_url()})
    musicai.admin.clear_faults()
    assert musicai.admin.jobs() == []
    text = logs()
    assert "deleted: timed out on the last try (1 of 1)" in text
    assert "because the task was killed" not in text


class _ResumedTI(FakeTI):
    """A task instance resumed after its deferral: the job id pushed before deferring, the tries."""

    def __init__(self, try_number: int, max_tries: int) -> None:
        super().__init__()
        self.try_number = try_number
        self.max_tries = max_tries

    def xcom_pull(self, task_ids: str, key: str, map_indexes: int) -> Any:
        return self.xcoms.get(key)


def _trigger_timeout() -> dict[str, Any]:
    """What Airflow hands ``resume_execution`` when its own trigger timeout fired."""
    if airflow_major() >= 3:
        from airflow.sdk.bases.operator import TriggerFailureReason

        return {"error": TriggerFailureReason.TRIGGER_TIMEOUT}
    return {"error": "Trigger/execution timeout"}


@pytest.mark.parametrize(("try_number", "kept"), [(1, True), (2, False)], ids=["retry-follows", "last-try"])
def test_airflows_trigger_timeout_is_settled_in_resume_execution(
    musicai: Any, hook: Any, input_url: Any, make_context: Any, try_number: int, kept: bool
) -> None:
    """No triggerer reported our deadline in time: Airflow resumes the task only to fail it
    (TaskDeferralTimeout on Airflow 3, TaskDeferralError on 2.11), in its ``resume_execution``."""
    musicai.admin.configure(queued_seconds=600)
    job_id = hook.create_job("slow", STEMS, {"inputUrl": input_url()})
    ti = _ResumedTI(try_number, max_tries=1)
    ti.xcoms["job_id"] = job_id
    op = MusicAICreateJobOperator(
        task_id="job", name="slow", workflow=STEMS, workflow_params={}, deferrable=True
    )
    if airflow_major() >= 3:
        from airflow.sdk.exceptions import TaskDeferralTimeout as AirflowsError
    else:
        from airflow.exceptions import TaskDeferralError as AirflowsError  # type: ignore[assignment]
    with pytest.raises(AirflowsError):  # Airflow's own error, re-raised unchanged
        op.resume_execution("__fail__", _trigger_timeout(), make_context(ti))
    assert (job_id in {job["id"] for job in musicai.admin.jobs()}) is kept
    op.on_kill()  # Airflow does not call it here; if it did, the settled job stays as decided
    assert (job_id in {job["id"] for job in musicai.admin.jobs()}) is kept


def test_on_timeout_is_validated() -> None:
    with pytest.raises(ValueError, match=r"on_timeout must be one of 'auto', 'keep', 'delete', got 'kill'"):
        MusicAICreateJobOperator(
            task_id="job", name="n", workflow=STEMS, workflow_params={"inputUrl": "x"}, on_timeout="kill"
        )


def test_a_sensor_keeps_the_jobs_it_waited_on_by_default(musicai: Any, hook: Any, input_url: Any) -> None:
    musicai.admin.configure(queued_seconds=600)
    job_id = hook.create_job("elsewhere", STEMS, {"inputUrl": input_url()})
    dag_run = run_dag(load_test_dag("sensor_timeout_default"), {"job_id": job_id})
    assert task_states(dag_run) == {"wait": "failed"}
    assert [job["id"] for job in musicai.admin.jobs()] == [job_id]


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferred"])
def test_a_sensor_with_auto_deletes_the_running_job_its_timeout_gave_up_on(
    musicai: Any, hook: Any, input_url: Any, logs: Any, deferrable: bool
) -> None:
    """A sensor's own timeout is never retried (its retries do not count): the job is deleted."""
    musicai.admin.configure(queued_seconds=600)
    job_id = hook.create_job("elsewhere", STEMS, {"inputUrl": input_url()})
    dag = load_test_dag("sensor_timeout_auto_deferred" if deferrable else "sensor_timeout_auto_poke")
    dag_run = run_dag(dag, {"job_id": job_id})
    assert task_states(dag_run) == {"wait": "failed"}
    assert musicai.admin.jobs() == []
    assert (
        f"Music AI job {job_id} deleted: timed out on try 1 of 3, and a sensor timeout is not retried"
        in logs()
    )
