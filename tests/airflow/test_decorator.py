"""``@task.musicai``: registered through the provider info, mapped, deferred, chained, on Airflow 3 and 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_musicai.decorators.musicai import job_spec
from tests.helpers.airflow import load_dag_file, run_dag, task_states, xcom_value

DAGS = Path(__file__).parent / "dags" / "musicai_decorator_dags.py"


def test_job_spec_reads_both_return_forms() -> None:
    assert job_spec({"inputUrl": "u"}) == ({"inputUrl": "u"}, None, None)
    assert job_spec({"params": {"inputUrl": "u"}, "name": "n", "metadata": {"a": 1}}) == (
        {"inputUrl": "u"},
        "n",
        {"a": 1},
    )
    # A workflow input that happens to be called "params", next to others, is a param.
    assert job_spec({"params": "p", "inputUrl": "u"}) == ({"params": "p", "inputUrl": "u"}, None, None)
    with pytest.raises(TypeError, match="must return the job's params"):
        job_spec("https://example.com/a.wav")
    with pytest.raises(TypeError, match="non-empty dict"):
        job_spec({"params": {}})


def test_task_musicai_is_registered() -> None:
    from airflow.providers.common.compat.sdk import task

    from airflow_provider_musicai.decorators.musicai import musicai_task

    assert task.musicai is musicai_task  # type: ignore[attr-defined]


@pytest.mark.usefixtures("airflow_db")
def test_decorated_jobs_map_defer_and_chain(musicai: Any, input_url: Any) -> None:
    urls = [input_url(), input_url()]
    dag_run = run_dag(load_dag_file(DAGS).decorated, {"urls": urls})
    states = task_states(dag_run)
    assert set(states.values()) == {"success"}, states
    assert {"stems[0]", "stems[1]", "first_stems", "lyrics"} <= set(states)

    mapped = [xcom_value(dag_run, "stems", map_index=i) for i in range(2)]
    for index, job in enumerate(mapped):
        assert job["status"] == "SUCCEEDED" and job["name"] == f"stems of {urls[index][-12:]}"
        assert job["metadata"]["origin"] == "test" and job["metadata"]["airflowTaskId"] == "stems"
        assert job["result"]["vocals"] == f"musicai-result://{job['id']}/vocals"
        assert xcom_value(dag_run, "stems", key="job_id", map_index=index) == job["id"]
    # The chained job ran on the first job's vocals, resolved inside the hook; no signed URL in XCom.
    first = xcom_value(dag_run, "first_stems")
    lyrics = xcom_value(dag_run, "lyrics")
    assert lyrics["name"] == "lyrics" and lyrics["status"] == "SUCCEEDED"
    assert urlsplit(lyrics["workflowParams"]["inputUrl"]).path.endswith("/vocals.wav")
    assert "X-Signature" not in json.dumps([mapped, first])
    # One job per task (map index): no duplicates.
    assert len(musicai.admin.jobs()) == 4


@pytest.mark.compat
@pytest.mark.usefixtures("airflow_db")
def test_example_decorator(musicai: Any) -> None:
    from tests.helpers.airflow import load_example

    dag_run = run_dag(load_example("example_musicai_decorator"))
    states = task_states(dag_run)
    assert set(states.values()) == {"success"}, states
    lyrics = xcom_value(dag_run, "transcribe_vocals")
    assert lyrics["name"] == "Lyrics (en)" and lyrics["metadata"]["source"] == "example_musicai_decorator"
    assert urlsplit(lyrics["workflowParams"]["inputUrl"]).path.endswith("/vocals.wav")
