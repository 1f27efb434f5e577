"""Wait for a Music AI job created elsewhere (an app, another DAG, the dashboard), then use its result.

Trigger it with the job's id, e.g. ``airflow dags trigger example_musicai_sensor -c
'{"job_id": "2e35babc-91c4-4121-89f4-5a2acf956b28"}'``; triggered without one (as the UI's form
does by default), it first starts a demo job on a generated WAV to wait for. The sensor waits
deferred (no worker slot),
returns the final job document, and fails with the API's code, title and message if the job FAILED.
The sensor never deletes the job: it did not create it.
"""

from __future__ import annotations

import io
import math
import os
import struct
import wave
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import Param, dag, task

from airflow_provider_musicai.hooks.musicai import MusicAIHook
from airflow_provider_musicai.sensors.musicai import MusicAIJobSensor

POLL_INTERVAL = float(os.environ.get("MUSICAI_EXAMPLE_POLL_INTERVAL", "30"))
DEMO_WORKFLOW = "music-ai/stems-vocals-accompaniment"


def _demo_wav(seconds: float = 1.0, rate: int = 22050) -> io.BytesIO:
    """A one-second stereo A4 tone, in memory."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        tone = (int(9000 * math.sin(2 * math.pi * 440.0 * i / rate)) for i in range(int(seconds * rate)))
        out.writeframes(b"".join(struct.pack("<hh", sample, sample) for sample in tone))
    buffer.seek(0)
    return buffer


@dag(
    dag_id="example_musicai_sensor",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "musicai"],
    params={
        # Nullable: the UI's form treats a non-nullable param without a value as missing.
        "job_id": Param(
            None,
            type=["null", "string"],
            description="The Music AI job to wait for; empty = start a demo job and wait for it",
        )
    },
    doc_md=__doc__,
)
def example_musicai_sensor() -> None:
    @task
    def job_to_wait_for(params: dict[str, Any] | None = None) -> str:
        """The ``job_id`` param, or the id of a demo job started on a generated one-second WAV."""
        assert params is not None
        if params["job_id"]:
            return str(params["job_id"])
        hook = MusicAIHook()
        url = hook.upload_file(_demo_wav(), content_type="audio/wav")
        return hook.create_job("Sensor example demo", DEMO_WORKFLOW, {"inputUrl": url})

    # [START howto_sensor_musicai_job]
    wait_for_job = MusicAIJobSensor(
        task_id="wait_for_job",
        job_id=job_to_wait_for(),
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(hours=6),
    )
    # [END howto_sensor_musicai_job]

    @task
    def use_result(job: dict[str, Any]) -> list[str]:
        """Whatever comes next; here: list the result's keys (never print the signed URLs)."""
        keys = sorted(job.get("result") or {})
        print(f"Job {job['id']} ({job['workflow']}) SUCCEEDED with results: {', '.join(keys)}")
        return keys

    use_result(wait_for_job.output)


dag = example_musicai_sensor()
