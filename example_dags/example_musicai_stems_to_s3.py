"""Stems written straight to S3 by Music AI, and a second DAG scheduled on them.

    example_musicai_stems_to_s3:        make_track -> upload_track -> separate_stems  (-> Asset)
    example_musicai_stems_consumer:     (Asset ->) list_new_stems

* ``separate_stems`` runs ``music-ai/stems-vocals-accompaniment`` with ``copy_results_to``: Music AI
  PUTs each stem to ``<STEMS_FOLDER>/<run timestamp>/<output>`` through a presigned URL the operator
  makes with the Amazon provider's S3 hook (connection ``MUSICAI_EXAMPLE_AWS_CONN_ID``). No worker
  downloads anything; the returned job document maps ``vocals`` and ``accompaniments`` to their
  ``s3://`` URIs.
* Its outlet, the Asset ``<STEMS_FOLDER>``, gets an event whose extra holds the Music AI job id and
  the files written, and ``example_musicai_stems_consumer`` is scheduled on that Asset.

Needs ``pip install 'airflow-provider-musicai[amazon]'``. ``MUSICAI_EXAMPLE_STEMS_FOLDER`` sets the
folder (default ``s3://musicai-stems/stems``; the bucket must exist).
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import Asset, dag, task

from airflow_provider_musicai.operators.musicai import MusicAICreateJobOperator, MusicAIUploadOperator

STEMS_FOLDER = os.environ.get("MUSICAI_EXAMPLE_STEMS_FOLDER", "s3://musicai-stems/stems").rstrip("/")
AWS_CONN_ID = os.environ.get("MUSICAI_EXAMPLE_AWS_CONN_ID", "aws_default")
POLL_INTERVAL = float(os.environ.get("MUSICAI_EXAMPLE_POLL_INTERVAL", "5"))
STEMS = Asset(STEMS_FOLDER)


def _demo_wav(path: str, seconds: float = 2.0, rate: int = 22050) -> str:
    """Write a stereo 16-bit WAV of a 440 Hz tone."""
    import math
    import struct
    import wave

    frames = b"".join(
        struct.pack("<hh", s, s // 2)
        for s in (
            int(0.4 * 32767 * math.sin(2 * math.pi * 440.0 * n / rate)) for n in range(int(seconds * rate))
        )
    )
    with wave.open(path, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path


@dag(
    dag_id="example_musicai_stems_to_s3",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "musicai"],
    doc_md=__doc__,
)
def example_musicai_stems_to_s3() -> None:
    @task
    def make_track() -> str:
        return _demo_wav(os.path.join(tempfile.mkdtemp(prefix="musicai-s3-"), "tone.wav"))

    upload = MusicAIUploadOperator(task_id="upload_track", source=make_track())

    # [START howto_operator_musicai_copy_results_to]
    MusicAICreateJobOperator(
        task_id="separate_stems",
        name="Stems to S3",
        workflow="music-ai/stems-vocals-accompaniment",
        workflow_params={"inputUrl": upload.output},
        # One object per output under the folder: .../<ts>/vocals and .../<ts>/accompaniments.
        copy_results_to=STEMS_FOLDER + "/{{ ts_nodash }}/",
        copy_outputs=["vocals", "accompaniments"],
        storage_conn_id=AWS_CONN_ID,
        # Downstream DAGs scheduled on this Asset run when the stems are there.
        outlets=[STEMS],
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(hours=1),
    )
    # [END howto_operator_musicai_copy_results_to]


# [START howto_asset_musicai_consumer]
@dag(
    dag_id="example_musicai_stems_consumer",
    schedule=[STEMS],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "musicai"],
)
def example_musicai_stems_consumer() -> None:
    @task
    def list_new_stems(**context: Any) -> list[dict[str, Any]]:
        """The job id and stem files of each asset event that triggered this run."""
        events = context.get("triggering_asset_events") or context.get("triggering_dataset_events") or {}
        extras = [dict(event.extra or {}) for batch in events.values() for event in batch]
        for extra in extras:
            print(f"Music AI job {extra.get('musicai_job_id')} wrote {extra.get('files')}")
        return extras

    list_new_stems()


# [END howto_asset_musicai_consumer]

dag = example_musicai_stems_to_s3()
consumer = example_musicai_stems_consumer()
