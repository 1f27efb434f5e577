"""DAGs run by ``tests/airflow/test_decorator.py``: ``@task.musicai``, plain, mapped and deferred."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_musicai.operators.musicai import musicai_result

STEMS = "music-ai/stems-vocals-accompaniment"
LYRICS = "music-ai/transcribe-vocals"
ARGS: dict[str, Any] = {"schedule": None, "start_date": datetime(2025, 1, 1), "catchup": False}

with DAG("musicai_test_decorator", params={"urls": []}, **ARGS) as decorated:

    @task
    def urls(params: dict[str, Any] | None = None) -> list[str]:
        assert params is not None
        return list(params["urls"])

    @task.musicai(workflow=STEMS, deferrable=True, poll_interval=0.3)  # type: ignore[attr-defined, misc]
    def stems(url: str) -> dict[str, Any]:
        return {"params": {"inputUrl": url}, "name": f"stems of {url[-12:]}", "metadata": {"origin": "test"}}

    @task.musicai(workflow=LYRICS, poll_interval=0.3)  # type: ignore[attr-defined, misc]
    def lyrics(vocals: str) -> dict[str, str]:
        return {"inputUrl": vocals, "language": "en"}

    separated = stems.expand(url=urls())
    first = stems.override(task_id="first_stems")(url="{{ params.urls[0] }}")
    lyrics(musicai_result(first, "vocals"))
