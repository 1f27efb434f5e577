"""Chain two Music AI workflows on one track, then fetch every result and clean up.

    make_track -> upload_track -> separate_stems -> transcribe_vocals -> download_* -> delete_jobs
                                                                                   -> summarize

* ``make_track`` writes a short stereo WAV (a chord of sine waves) with the standard library, unless
  the ``track`` param names a file of your own (a local path, ``file://``, ``s3://``... URL).
* ``upload_track`` returns the uploaded file's URL *sealed* (signed URLs are credentials and stay
  out of XCom); the job operator opens it again.
* ``separate_stems`` runs ``music-ai/stems-vocals-accompaniment`` and, deferred in the triggerer,
  waits for it. Its return value is the final job document, whose URL results are
  ``musicai-result://<job id>/<key>`` references rather than signed URLs.
* ``transcribe_vocals`` runs ``music-ai/transcribe-vocals`` on the *vocals stem of the first job*:
  ``stems.result("vocals")``, plain Python (an XComArg, no Jinja). The hook turns the reference
  into a fresh signed URL when it creates the job.
* A job's id is ``task.output["job_id"]``, everywhere.
* Both jobs' results are downloaded under ``<output_dir>/stems/`` and ``<output_dir>/lyrics/``;
  both jobs are then deleted, even when something upstream failed (``trigger_rule="all_done"``).

The connection comes from ``AIRFLOW_CONN_MUSICAI_DEFAULT``, e.g.
``{"conn_type": "musicai", "password": "<API key>"}`` for the real API, or the emulator's
(``python -m airflow_provider_musicai.testing.emulator``). Run it with ``airflow dags test
example_musicai_chain`` or ``example_dags/run_example.py``.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import Param, dag, task

from airflow_provider_musicai.operators.musicai import (
    MusicAICreateJobOperator,
    MusicAIDeleteJobOperator,
    MusicAIDownloadResultsOperator,
    MusicAIUploadOperator,
)

OUTPUT_DIR = os.environ.get("MUSICAI_EXAMPLE_OUTPUT_DIR") or os.path.join(
    tempfile.gettempdir(), "musicai-example"
)
POLL_INTERVAL = float(os.environ.get("MUSICAI_EXAMPLE_POLL_INTERVAL", "5"))


def write_demo_wav(path: str, seconds: float = 3.0, rate: int = 22050) -> str:
    """Write a stereo 16-bit WAV: an A major chord, the root on the left, the fifth on the right."""
    import math
    import struct
    import wave

    frames = bytearray()
    for n in range(int(seconds * rate)):
        t = n / rate
        left = 0.3 * math.sin(2 * math.pi * 440.0 * t) + 0.2 * math.sin(2 * math.pi * 554.37 * t)
        right = 0.3 * math.sin(2 * math.pi * 659.25 * t) + 0.2 * math.sin(2 * math.pi * 554.37 * t)
        frames += struct.pack("<hh", int(left * 32767), int(right * 32767))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with wave.open(path, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return path


@dag(
    dag_id="example_musicai_chain",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "musicai"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    params={
        # Nullable, so the UI's form does not treat an empty track as a missing required field.
        "track": Param(
            None, type=["null", "string"], description="Audio to process; empty = generate a demo WAV"
        ),
        "output_dir": Param(OUTPUT_DIR, type="string", description="Where results are written"),
    },
    doc_md=__doc__,
)
def example_musicai_chain() -> None:
    @task
    def make_track(params: dict[str, Any] | None = None) -> str:
        """The track to process: the ``track`` param, or a freshly generated demo WAV."""
        assert params is not None
        if params["track"]:
            return str(params["track"])
        return write_demo_wav(os.path.join(params["output_dir"], "input", "demo-chord.wav"))

    # [START howto_operator_musicai_upload]
    upload = MusicAIUploadOperator(task_id="upload_track", source=make_track())
    # [END howto_operator_musicai_upload]

    # [START howto_operator_musicai_create_job]
    stems = MusicAICreateJobOperator(
        task_id="separate_stems",
        name="Stems of {{ params.track or 'the demo chord' }}",
        workflow="music-ai/stems-vocals-accompaniment",
        workflow_params={"inputUrl": upload.output},
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(hours=1),
    )
    # [END howto_operator_musicai_create_job]

    # [START howto_operator_musicai_create_job_chained]
    # The second job's input is one result of the first job: its vocals stem.
    lyrics = MusicAICreateJobOperator(
        task_id="transcribe_vocals",
        name="Lyrics of the vocals stem",
        workflow="music-ai/transcribe-vocals",
        workflow_params={"inputUrl": stems.result("vocals"), "language": "en"},
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(hours=1),
    )
    # [END howto_operator_musicai_create_job_chained]

    # [START howto_operator_musicai_download_results]
    download_stems = MusicAIDownloadResultsOperator(
        task_id="download_stems",
        job_id=stems.output["job_id"],
        destination="{{ params.output_dir }}/stems",
    )
    # [END howto_operator_musicai_download_results]
    download_lyrics = MusicAIDownloadResultsOperator(
        task_id="download_lyrics",
        job_id=lyrics.output["job_id"],
        destination="{{ params.output_dir }}/lyrics",
    )

    # [START howto_operator_musicai_delete_job]
    # Runs even if something failed. The one exception to "no Jinja": an XComArg whose upstream
    # never pushed fails the task, while this template renders "None", which is skipped.
    delete_jobs = MusicAIDeleteJobOperator(
        task_id="delete_jobs",
        job_id=[
            "{{ ti.xcom_pull(task_ids='separate_stems', key='job_id') }}",
            "{{ ti.xcom_pull(task_ids='transcribe_vocals', key='job_id') }}",
        ],
        trigger_rule="all_done",
    )
    # [END howto_operator_musicai_delete_job]

    @task
    def summarize(
        jobs: dict[str, str], files: dict[str, dict[str, str]], params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Write what came out to ``<output_dir>/summary.json`` and log it."""
        assert params is not None
        summary = {"jobs": jobs, "files": files}
        path = os.path.join(params["output_dir"], "summary.json")
        with open(path, "w") as out:
            json.dump(summary, out, indent=2)
        print(json.dumps(summary, indent=2))
        return summary

    upload >> stems >> lyrics >> [download_stems, download_lyrics]
    [download_stems, download_lyrics] >> delete_jobs
    summarize(
        jobs={"separate_stems": stems.output["job_id"], "transcribe_vocals": lyrics.output["job_id"]},
        files={"separate_stems": download_stems.output, "transcribe_vocals": download_lyrics.output},
    )


dag = example_musicai_chain()
