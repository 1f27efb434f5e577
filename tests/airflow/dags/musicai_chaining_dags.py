"""DAGs run by ``tests/airflow/test_chaining.py``: results handed on with ``result()``, no Jinja."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_musicai.operators.musicai import MusicAICreateJobOperator, musicai_result

STEMS = "music-ai/stems-vocals-accompaniment"
LYRICS = "music-ai/transcribe-vocals"
ARGS: dict[str, Any] = {"schedule": None, "start_date": datetime(2025, 1, 1), "catchup": False}


def vocals_input(job: dict[str, Any]) -> dict[str, str]:
    """Airflow maps only over return values: one job document per index -> the next job's params."""
    return {"inputUrl": job["result"]["vocals"], "language": "en"}


with DAG("musicai_test_chain_mapped", params={"urls": []}, **ARGS) as chain_mapped:

    @task
    def inputs(params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        assert params is not None
        return [{"inputUrl": url} for url in params["urls"]]

    stems = MusicAICreateJobOperator.partial(
        task_id="stems", name="stems {{ ti.map_index }}", workflow=STEMS, deferrable=True, poll_interval=0.3
    ).expand(workflow_params=inputs())
    # Mapping over a mapped upstream's results goes through its return value (the job documents).
    lyrics = MusicAICreateJobOperator.partial(
        task_id="lyrics", name="lyrics {{ ti.map_index }}", workflow=LYRICS, poll_interval=0.3
    ).expand(workflow_params=stems.output.map(vocals_input))

    @task
    def collect(vocals: list[str], texts: list[str]) -> dict[str, list[str]]:
        """A TaskFlow task gets one result of every map index: references, never signed URLs."""
        return {"vocals": list(vocals), "lyrics": list(texts)}

    collect(musicai_result(stems, "vocals"), musicai_result(lyrics, "lyrics"))
