"""Every example DAG can be triggered from the UI as shipped: its params' defaults pass Airflow's
own validation and the Airflow 3 UI form's "required" check, and a run with those defaults works."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers.airflow import EXAMPLE_DAGS, airflow_major, load_example, run_dag, task_states, xcom_value

EXAMPLES = sorted(path.stem for path in Path(EXAMPLE_DAGS).glob("example_*.py"))
AIRFLOW_3_ONLY = {"example_musicai_job_events"}  # asset watchers


def ui_form_blocks(param: Any) -> bool:
    """The Airflow 3 UI's rule (FlexibleForm): a param whose schema has a type that does not allow
    null is required, and a required param whose value is null, undefined or "" greys out Trigger."""
    kind = param.schema.get("type")
    required = bool(kind) and not (isinstance(kind, list) and "null" in kind)
    return required and param.value in (None, "")


def test_the_examples_are_found() -> None:
    assert EXAMPLES == [
        "example_musicai_catalog",
        "example_musicai_catalog_at_scale",
        "example_musicai_chain",
        "example_musicai_decorator",
        "example_musicai_job_events",
        "example_musicai_sensor",
        "example_musicai_stems_to_s3",
    ]


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_can_be_triggered_with_its_defaults(name: str) -> None:
    if name in AIRFLOW_3_ONLY and airflow_major() < 3:
        pytest.skip("asset watchers need Airflow 3")
    dag = load_example(name)
    dag.params.validate()  # what a trigger does: raises ParamValidationError on a bad default
    blocked = [key for key in dag.params if ui_form_blocks(dag.params.get_param(key))]
    assert blocked == [], f"{name}: the UI form would refuse to trigger without {blocked}"


@pytest.mark.usefixtures("airflow_db")
def test_the_sensor_example_triggered_without_a_job_id_waits_for_a_demo_job(musicai: Any) -> None:
    dag_run = run_dag(load_example("example_musicai_sensor"))
    assert set(task_states(dag_run).values()) == {"success"}, task_states(dag_run)
    job = xcom_value(dag_run, "wait_for_job")
    assert job["id"] == xcom_value(dag_run, "job_to_wait_for") and job["status"] == "SUCCEEDED"
    assert xcom_value(dag_run, "use_result") == ["accompaniments", "vocals"]
