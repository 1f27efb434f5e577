"""The catalog-at-scale example DAG, run with dag.test() on a small local catalog, and the
provider registration of the catalog operator and trigger."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_musicai.get_provider_info import get_provider_info
from tests.helpers.airflow import airflow_major, load_example, run_dag, task_states, xcom_value


@pytest.mark.compat
def test_example_catalog_at_scale(airflow_db: str, musicai: Any, tmp_path: Path) -> None:
    conf = {"catalog": f"file://{tmp_path}/catalog", "output": f"file://{tmp_path}/results"}
    dag_run = run_dag(load_example("example_musicai_catalog_at_scale"), conf)
    states = task_states(dag_run)
    assert set(states.values()) == {"success"}, states
    summary = xcom_value(dag_run, "report")
    assert (summary["total"], summary["succeeded"], summary["failed"]) == (3, 3, 0)
    (day,) = [path for path in (tmp_path / "results").iterdir()]
    assert {"result.json"} <= {path.name for path in (day / "a" / "a4").iterdir()}
    manifest = [
        json.loads(line) for part in day.rglob("part-*.jsonl") for line in part.read_text().splitlines()
    ]
    assert sorted(line["source"] for line in manifest) == ["a/a4.wav", "a/c5.wav", "b/e5.wav"]
    assert musicai.admin.counters()["jobs_created"] == 3
    assert musicai.admin.jobs() == []  # delete_after


@pytest.mark.skipif(airflow_major() < 3, reason="every Airflow 2 run has a logical date")
def test_example_catalog_at_scale_on_a_run_without_logical_date(
    airflow_db: str, musicai: Any, tmp_path: Path
) -> None:
    """Runs triggered by an asset, or by the API without a logical date, have no ``ds``: the
    results land under the date the run was triggered."""
    conf = {"catalog": f"file://{tmp_path}/catalog", "output": f"file://{tmp_path}/results"}
    dag_run = load_example("example_musicai_catalog_at_scale").test(run_conf=conf, logical_date=None)
    assert dag_run.logical_date is None
    assert set(task_states(dag_run).values()) == {"success"}
    (day,) = [path.name for path in (tmp_path / "results").iterdir()]
    assert day == dag_run.run_after.strftime("%Y-%m-%d")
    assert xcom_value(dag_run, "report")["succeeded"] == 3


def test_catalog_modules_are_registered() -> None:
    info = get_provider_info()
    operators = [m for entry in info["operators"] for m in entry["python-modules"]]
    triggers = [m for entry in info["triggers"] for m in entry["python-modules"]]
    assert "airflow_provider_musicai.operators.catalog" in operators
    assert "airflow_provider_musicai.triggers.catalog" in triggers
    from airflow import __version__ as airflow_version

    for module in operators + triggers:
        if module.endswith(".events") and int(airflow_version.split(".")[0]) < 3:
            continue  # asset watchers' event triggers exist on Airflow 3 only
        importlib.import_module(module)
