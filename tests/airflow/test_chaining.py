"""Handing a job's results on in plain Python: ``result()``/``musicai_result()`` and the params check."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_musicai.operators.musicai import MusicAICreateJobOperator, musicai_result
from tests.helpers.airflow import FakeTI, load_dag_file, run_dag, task_states, xcom_value

DAGS = Path(__file__).parent / "dags" / "musicai_chaining_dags.py"
STEMS = "music-ai/stems-vocals-accompaniment"


def stems_op(**kwargs: Any) -> MusicAICreateJobOperator:
    return MusicAICreateJobOperator(
        task_id="stems", name="stems", workflow=STEMS, poll_interval=0.2, deferrable=False, **kwargs
    )


def test_each_result_is_pushed_as_a_reference(musicai: Any, input_url: Any, make_context: Any) -> None:
    ti = FakeTI()
    job = stems_op(workflow_params={"inputUrl": input_url()}).execute(make_context(ti))
    assert ti.xcoms["result.vocals"] == f"musicai-result://{job['id']}/vocals"
    assert ti.xcoms["result.accompaniments"] == f"musicai-result://{job['id']}/accompaniments"


def test_result_is_an_xcomarg_on_the_result_key() -> None:
    from airflow.providers.common.compat.sdk import DAG

    with DAG("musicai_result_arg", schedule=None, start_date=datetime(2025, 1, 1)):
        stems = stems_op(workflow_params={"inputUrl": "https://example.com/a.wav"})
        arg = stems.result("vocals")
        nxt = MusicAICreateJobOperator(
            task_id="next", name="n", workflow="w", workflow_params={"inputUrl": arg}
        )
    assert arg.operator is stems and arg.key == "result.vocals"
    assert musicai_result(stems, "vocals").key == "result.vocals"
    assert musicai_result(stems.output, "vocals").key == "result.vocals"
    assert nxt.upstream_task_ids == {"stems"}


def test_result_needs_a_task_that_waits() -> None:
    op = stems_op(workflow_params={"inputUrl": "x"}, wait_for_completion=False)
    with pytest.raises(ValueError, match="wait_for_completion=False"):
        op.result("vocals")


def test_params_instead_of_workflow_params_points_at_workflow_params() -> None:
    with pytest.raises(TypeError, match=r"workflow_params.*params \(inputUrl\) is reserved by Airflow"):
        stems_op(params={"inputUrl": "https://example.com/a.wav"})
    with pytest.raises(TypeError, match="needs workflow_params="):
        stems_op()
    # Airflow's own params next to workflow_params are fine.
    op = stems_op(workflow_params={"inputUrl": "x"}, params={"inputUrl": "y"})
    assert op.workflow_params == {"inputUrl": "x"}


def serialized(dag: Any) -> dict[str, Any]:
    try:
        from airflow.serialization.serialized_objects import DagSerialization as Serializer
    except ImportError:  # Airflow 2
        from airflow.serialization.serialized_objects import SerializedDAG as Serializer
    data = Serializer.to_dict(dag)
    roundtrip = Serializer.from_dict(data)
    assert roundtrip.get_task("lyrics").upstream_task_ids == {"stems"}
    assert roundtrip.get_task("collect").upstream_task_ids == {"stems", "lyrics"}
    return data  # type: ignore[no-any-return]


def test_result_references_survive_dag_serialization() -> None:
    dag = load_dag_file(DAGS).chain_mapped
    text = json.dumps(serialized(dag))
    assert "'result.vocals'" in text and "'result.lyrics'" in text


@pytest.mark.usefixtures("airflow_db")
def test_mapped_chain_hands_results_on(musicai: Any, input_url: Any) -> None:
    urls = [input_url(), input_url()]
    dag_run = run_dag(load_dag_file(DAGS).chain_mapped, {"urls": urls})
    states = task_states(dag_run)
    assert set(states.values()) == {"success"}, states
    stems = [xcom_value(dag_run, "stems", map_index=i) for i in range(2)]
    lyrics = [xcom_value(dag_run, "lyrics", map_index=i) for i in range(2)]
    # Each second job ran on its own index's vocals stem (a reference resolved inside the hook).
    inputs = [urlsplit(lyric["workflowParams"]["inputUrl"]).path for lyric in lyrics]
    assert all(path.endswith("/vocals.wav") for path in inputs) and inputs[0] != inputs[1]
    collected = xcom_value(dag_run, "collect")
    assert collected["vocals"] == [f"musicai-result://{s['id']}/vocals" for s in stems]
    assert collected["lyrics"] == [f"musicai-result://{job['id']}/lyrics" for job in lyrics]
    assert "X-Signature" not in json.dumps(collected)
