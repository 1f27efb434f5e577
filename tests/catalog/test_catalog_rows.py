"""Airflow rows of one catalog run: MusicAICatalogOperator vs the mapped example, same catalog.

``dag.test()`` on the test metadata database, rows counted afterwards. ``MUSICAI_CATALOG_ROWS``
sets the catalog size (benchmarks/README.md has the figures for 200 tracks)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.helpers.airflow import load_example, run_dag, task_states
from tests.helpers.audio import wav_bytes

TRACKS = int(os.environ.get("MUSICAI_CATALOG_ROWS", "6"))


def _rows(dag_run: Any, triggers_before: int) -> dict[str, int]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger

    try:
        from airflow.models.xcom import XComModel
    except ImportError:  # Airflow 2.x: the ORM model is BaseXCom
        from airflow.models.xcom import BaseXCom as XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        where = (TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id)
        xcom_where = (XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id)
        return {
            "task_instances": session.scalar(select(func.count()).select_from(TaskInstance).where(*where)),
            "xcom": session.scalar(select(func.count()).select_from(XComModel).where(*xcom_where)),
            "triggers": (session.scalar(select(func.max(Trigger.id))) or 0) - triggers_before,
        }


def _last_trigger_id() -> int:
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(select(func.max(Trigger.id))) or 0


def test_the_catalog_operator_needs_constant_rows_the_mapped_example_rows_per_track(
    airflow_db: str, musicai: Any, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    for n in range(TRACKS):
        (catalog / f"track{n:04d}.wav").write_bytes(wav_bytes(0.05, rate=8000))
    rows = {}
    for name in ("example_musicai_catalog_at_scale", "example_musicai_catalog"):
        before = _last_trigger_id()
        conf = {"catalog": f"file://{catalog}", "output": f"file://{tmp_path}/{name}"}
        dag_run = run_dag(load_example(name), conf)
        assert set(task_states(dag_run).values()) == {"success"}
        rows[name] = _rows(dag_run, before)
    print(f"AIRFLOW ROWS for {TRACKS} tracks: {rows}")
    at_scale, mapped = rows["example_musicai_catalog_at_scale"], rows["example_musicai_catalog"]
    assert at_scale["task_instances"] <= 3 < TRACKS <= mapped["task_instances"] // 4
    assert at_scale["xcom"] < mapped["xcom"]
    from airflow import __version__ as airflow_version

    if int(airflow_version.split(".")[0]) >= 3:  # 2.11's dag.test runs triggers without trigger rows
        assert at_scale["triggers"] < mapped["triggers"]
