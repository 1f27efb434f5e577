"""Music AI jobs as TaskFlow functions: ``@task.musicai``.

    make_track -> upload_track -> separate_stems -> transcribe_vocals

* ``separate_stems`` is a function that returns the job's params; ``@task.musicai`` creates the
  job, waits for it (deferred in the triggerer) and returns the final job document.
* ``transcribe_vocals`` gets the vocals stem of that job with ``musicai_result(stems, "vocals")``
  (a ``musicai-result://`` reference, turned into a fresh signed URL inside the hook) and returns
  the long form, ``{"params": ..., "name": ..., "metadata": ...}``.

The connection comes from ``AIRFLOW_CONN_MUSICAI_DEFAULT`` (see ``example_musicai_chain``).
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import Param, dag, task

from airflow_provider_musicai.operators.musicai import MusicAIUploadOperator, musicai_result

POLL_INTERVAL = float(os.environ.get("MUSICAI_EXAMPLE_POLL_INTERVAL", "5"))


@dag(
    dag_id="example_musicai_decorator",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "musicai"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    params={"track": Param(None, type=["null", "string"], description="Audio; empty = a demo tone")},
    doc_md=__doc__,
)
def example_musicai_decorator() -> None:
    @task
    def make_track(params: dict[str, Any] | None = None) -> str:
        """The ``track`` param, or one second of a 440 Hz tone written with the standard library."""
        import math
        import struct
        import wave

        assert params is not None
        if params["track"]:
            return str(params["track"])
        path = os.path.join(tempfile.mkdtemp(prefix="musicai-"), "tone.wav")
        with wave.open(path, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(22050)
            out.writeframes(
                b"".join(
                    struct.pack("<h", int(9000 * math.sin(2 * math.pi * 440 * n / 22050)))
                    for n in range(22050)
                )
            )
        return path

    upload = MusicAIUploadOperator(task_id="upload_track", source=make_track())

    # [START howto_decorator_musicai]
    @task.musicai(
        workflow="music-ai/stems-vocals-accompaniment", deferrable=True, poll_interval=POLL_INTERVAL
    )
    def separate_stems(track_url: str) -> dict[str, Any]:
        """Return the job's params; the task creates the job and returns its final document."""
        return {"inputUrl": track_url}

    @task.musicai(workflow="music-ai/transcribe-vocals", deferrable=True, poll_interval=POLL_INTERVAL)
    def transcribe_vocals(vocals: str, language: str = "en") -> dict[str, Any]:
        """The long form: params plus the job's name and metadata."""
        return {
            "params": {"inputUrl": vocals, "language": language},
            "name": f"Lyrics ({language})",
            "metadata": {"source": "example_musicai_decorator"},
        }

    stems = separate_stems(upload.output)
    transcribe_vocals(musicai_result(stems, "vocals"))
    # [END howto_decorator_musicai]


dag = example_musicai_decorator()
