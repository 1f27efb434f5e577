"""Analyse a whole catalog every day: one mapped group of tasks per audio file, waited on deferred.

    list_tracks -> process_track[i]: upload -> analyze -> download -> delete_job  -> report
                                    destination /

* ``list_tracks`` lists the audio files under the ``catalog`` param, any ``ObjectStoragePath``
  (``file:///...``, ``s3://bucket/prefix``...). The default is a local folder that the DAG seeds with
  a few demo WAVs when it is empty, so the example runs as written.
* ``process_track`` is a task group mapped over the files (dynamic task mapping): each file is
  uploaded, analysed with ``music-ai/beats-chords-key`` (deferred: no worker slot while it runs),
  its results downloaded to ``<output>/<file stem>/``, and its job deleted. The tasks of one file
  depend only on each other, so a file that fails does not stop the others.
* ``report`` runs after every file was tried, logs a table of results, and fails the run (after
  everything else finished) if any file failed, so the failure stays visible.

Set ``include_broken_track`` to seed a file that is not audio and watch it fail on its own.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import Param, dag, task, task_group

from airflow_provider_musicai.operators.musicai import (
    MusicAICreateJobOperator,
    MusicAIDeleteJobOperator,
    MusicAIDownloadResultsOperator,
    MusicAIUploadOperator,
)

BASE_DIR = os.environ.get("MUSICAI_EXAMPLE_OUTPUT_DIR") or os.path.join(
    tempfile.gettempdir(), "musicai-example"
)
POLL_INTERVAL = float(os.environ.get("MUSICAI_EXAMPLE_POLL_INTERVAL", "10"))
AUDIO_SUFFIXES = {".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".aiff"}
GROUP = "process_track"


def _demo_wav(frequency: float, seconds: float = 2.0, rate: int = 22050) -> bytes:
    """A stereo 16-bit WAV of one sine tone, in memory."""
    import io
    import math
    import struct
    import wave

    frames = bytearray()
    for n in range(int(seconds * rate)):
        sample = int(0.4 * 32767 * math.sin(2 * math.pi * frequency * n / rate))
        frames += struct.pack("<hh", sample, sample // 2)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return buffer.getvalue()


@dag(
    dag_id="example_musicai_catalog",
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["example", "musicai"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    params={
        "catalog": Param(f"file://{BASE_DIR}/catalog", type="string", description="Folder or bucket"),
        "output": Param(f"file://{BASE_DIR}/catalog-results", type="string", description="Results"),
        "workflow": Param("music-ai/beats-chords-key", type="string"),
        "include_broken_track": Param(False, type="boolean", description="Seed a non-audio file too"),
    },
    doc_md=__doc__,
)
def example_musicai_catalog() -> None:
    @task
    def list_tracks(params: dict[str, Any] | None = None) -> list[str]:
        """Every audio file under ``catalog`` (seeding the default local folder when it is empty)."""
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        assert params is not None
        root = ObjectStoragePath(params["catalog"])
        if root.protocol in ("file", "local") and not (root.exists() and any(root.iterdir())):
            root.mkdir(parents=True, exist_ok=True)
            for name, frequency in (("a4.wav", 440.0), ("c5.wav", 523.25), ("e5.wav", 659.25)):
                (root / name).write_bytes(_demo_wav(frequency))
        if params["include_broken_track"] and root.protocol in ("file", "local"):
            (root / "broken.wav").write_bytes(b"this is not audio")
        tracks = sorted(str(path) for path in root.iterdir() if path.suffix.lower() in AUDIO_SUFFIXES)
        print(f"{len(tracks)} track(s) under {params['catalog']}")
        return tracks

    @task
    def destination_for(track: str, params: dict[str, Any] | None = None) -> str:
        """``<output>/<file stem>``: one results folder per track."""
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        assert params is not None
        return str(ObjectStoragePath(params["output"]) / ObjectStoragePath(track).stem)

    # [START howto_operator_musicai_mapped]
    @task_group(group_id=GROUP)
    def process_track(track: str) -> None:
        upload = MusicAIUploadOperator(task_id="upload", source=track)
        analyze = MusicAICreateJobOperator(
            task_id="analyze",
            name=track,
            workflow="{{ params.workflow }}",
            workflow_params={"inputUrl": upload.output},
            metadata={"catalog": "{{ params.catalog }}"},
            deferrable=True,
            poll_interval=POLL_INTERVAL,
            timeout=timedelta(hours=2),
        )
        download = MusicAIDownloadResultsOperator(
            task_id="download", job_id=analyze.output["job_id"], destination=destination_for(track)
        )
        delete_job = MusicAIDeleteJobOperator(
            task_id="delete_job",
            job_id="{{ ti.xcom_pull(task_ids='"
            + GROUP
            + ".analyze', key='job_id', map_indexes=ti.map_index) }}",
            trigger_rule="all_done",
        )
        analyze >> download >> delete_job

    # [END howto_operator_musicai_mapped]

    @task(trigger_rule="all_done")
    def report(tracks: list[str]) -> dict[str, Any]:
        """Log one line per track; fail (after all tracks were tried) if any of them failed."""
        from airflow.providers.common.compat.sdk import AirflowFailException, get_current_context

        ti = get_current_context()["ti"]
        done: dict[str, Any] = {}
        failed: list[str] = []
        for index, track in enumerate(tracks):
            files = ti.xcom_pull(task_ids=f"{GROUP}.download", map_indexes=index)
            if files:
                done[track] = files
                print(f"OK     {track}: {', '.join(sorted(files))}")
            else:
                failed.append(track)
                print(f"FAILED {track}")
        if failed:
            raise AirflowFailException(f"{len(failed)} of {len(tracks)} track(s) failed: {', '.join(failed)}")
        return {"processed": len(done), "results": done}

    tracks = list_tracks()
    process_track.expand(track=tracks) >> report(tracks)


dag = example_musicai_catalog()
