"""The "Music AI job" operator extra link: URL from the ``job_url_template`` extra, pushed as soon as
the job exists, read back through Airflow's own extra-link API, on Airflow 3 and 2."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_musicai.exceptions import MusicAIConfigurationError
from airflow_provider_musicai.hooks._config import ConnectionConfig
from airflow_provider_musicai.links import XCOM_KEY, MusicAIJobLink
from airflow_provider_musicai.operators.musicai import MusicAICreateJobOperator
from airflow_provider_musicai.sensors.musicai import MusicAIJobSensor
from tests.helpers.airflow import (
    TEST_DAGS,
    airflow_major,
    load_dag_file,
    run_dag,
    task_states,
    xcom_value,
)

TEMPLATE = "https://jobs.example.com/app/jobs/{job_id}?tab=result"
LINK = "Music AI job"


def config(**extra: Any) -> ConnectionConfig:
    return ConnectionConfig.from_connection(conn_id="c", host=None, password="k", extra=extra)


def test_the_template_gives_the_job_url_and_no_template_gives_none() -> None:
    assert config(job_url_template=TEMPLATE).job_url("a/b c") == (
        "https://jobs.example.com/app/jobs/a%2Fb%20c?tab=result"
    )
    assert config().job_url("abc") is None


@pytest.mark.parametrize("bad", ["https://x.example/jobs", "ftp://x/{job_id}", "/jobs/{job_id}", 42])
def test_an_unusable_template_names_the_extra(bad: Any) -> None:
    with pytest.raises(MusicAIConfigurationError, match="job_url_template"):
        config(job_url_template=bad)


def test_both_waiting_classes_carry_the_link_and_the_provider_registers_it() -> None:
    from airflow_provider_musicai.get_provider_info import get_provider_info

    for cls in (MusicAICreateJobOperator, MusicAIJobSensor):
        assert [link.name for link in cls.operator_extra_links] == [LINK]
    assert get_provider_info()["extra-links"] == ["airflow_provider_musicai.links.MusicAIJobLink"]
    assert MusicAIJobLink().xcom_key == XCOM_KEY


@pytest.fixture
def linked(musicai: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``musicai_default`` on the emulator with a ``job_url_template``."""
    connection = {**musicai.connection_dict(), "extra": json.dumps({"job_url_template": TEMPLATE})}
    monkeypatch.setenv("AIRFLOW_CONN_MUSICAI_DEFAULT", json.dumps(connection))
    return musicai


def extra_link(dag: Any, dag_run: Any, task_id: str, map_index: int = -1) -> str | None:
    """The link as the UI gets it: Airflow 3's API server (the serialized DAG's link, read from
    XCom), or Airflow 2's webserver (the operator's link class, ``get_link``)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter_by(dag_id=dag.dag_id, run_id=dag_run.run_id, task_id=task_id, map_index=map_index)
            .one()
        )
        try:
            from airflow.sdk import BaseOperator  # noqa: F401  # Airflow 3: what the API server uses
        except ImportError:  # Airflow 2's webserver: the DAG as serialized, with the link class
            from airflow.serialization.serialized_objects import SerializedDAG

            task = SerializedDAG.deserialize_dag(SerializedDAG.serialize_dag(dag)).get_task(task_id)
        else:
            from airflow.models.serialized_dag import SerializedDagModel

            serialized = SerializedDagModel.get_dag(dag.dag_id, session=session)
            assert serialized is not None
            task = serialized.get_task(task_id)
        return task.get_extra_links(ti, LINK)  # type: ignore[no-any-return]


@pytest.mark.compat
def test_finished_deferred_and_mapped_tasks_link_to_their_job(
    airflow_db: str, linked: Any, input_url: Any
) -> None:
    dag = load_dag_file(TEST_DAGS / "musicai_link_dags.py").links
    dag_run = run_dag(dag, {"urls": [input_url(), input_url(name="b.wav")]})
    states = task_states(dag_run)
    assert set(states.values()) == {"success"}, states
    for task_id in ("worker", "deferred"):
        job_id = xcom_value(dag_run, task_id, "job_id")
        assert extra_link(dag, dag_run, task_id) == TEMPLATE.format(job_id=job_id)
    for index in (0, 1):
        job_id = xcom_value(dag_run, "mapped", "job_id", map_index=index)
        assert extra_link(dag, dag_run, "mapped", index) == TEMPLATE.format(job_id=job_id)
    sensed = xcom_value(dag_run, "worker", "job_id")
    assert extra_link(dag, dag_run, "sensor") == TEMPLATE.format(job_id=sensed)
    assert not extra_link(dag, dag_run, "many")  # many jobs: no single page to link to


def test_without_a_template_no_link_is_shown(airflow_db: str, musicai: Any, input_url: Any) -> None:
    dag = load_dag_file(TEST_DAGS / "musicai_link_dags.py").links
    dag_run = run_dag(dag, {"urls": [input_url()]})
    assert task_states(dag_run)["worker"] == "success"
    assert not extra_link(dag, dag_run, "worker")
    assert xcom_value(dag_run, "worker", XCOM_KEY) in (None, "")


@pytest.mark.skipif(airflow_major() < 3, reason="Airflow 2 reads the link only when the UI asks")
def test_without_a_template_airflow_3_logs_no_missing_link_error(
    airflow_db: str,
    musicai: Any,
    input_url: Any,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Airflow 3's task runner reads the link's key whenever a task ends or defers, and logs
    ``[error] XCom not found`` for a key never pushed: every path pushes it, "" for no link."""
    dags = load_dag_file(TEST_DAGS / "musicai_link_dags.py")
    dag_run = run_dag(dags.links, {"urls": [input_url(), input_url(name="b.wav")]})
    assert set(task_states(dag_run).values()) == {"success"}
    refused = run_dag(dags.link_no_job)
    assert task_states(refused) == {"refused": "failed"}
    assert xcom_value(refused, "refused", XCOM_KEY) == ""
    captured = capfd.readouterr()
    logs = captured.out + captured.err + caplog.text  # Airflow logs to either, by set-up order
    assert "musicai_test_links.many" in logs  # the run's log lines were captured
    assert "XCom not found" not in logs


def test_the_url_is_pushed_before_the_task_defers(
    linked: Any, hook: Any, input_url: Any, make_context: Any
) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    linked.admin.configure(queued_seconds=60)
    operator = MusicAICreateJobOperator(
        task_id="t",
        name="n",
        workflow="music-ai/stems-vocals-accompaniment",
        workflow_params={"inputUrl": input_url()},
        deferrable=True,
    )
    context = make_context()
    with pytest.raises(TaskDeferred):
        operator.execute(context)
    assert context["ti"].xcoms[XCOM_KEY] == TEMPLATE.format(job_id=operator.job_id)
