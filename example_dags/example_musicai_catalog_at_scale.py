"""Process a whole catalog every day in ONE task: scales to 100,000 tracks.

    seed_demo_catalog -> catalog (MusicAICatalogOperator, deferred) -> report

The mapped example (``example_musicai_catalog``) makes a group of task instances per track and
stops at ``[core] max_map_length`` (1,024). Here one ``MusicAICatalogOperator`` lists the
``catalog`` prefix (any ``ObjectStoragePath``: ``file:///...``, ``s3://bucket/prefix``...), uploads
each file, runs one ``music-ai/beats-chords-key`` job per track with at most ``max_in_flight`` jobs
at once, waits deferred on one trigger, and downloads each track's results to
``<output>/<run date>/<track>/``. A JSON Lines manifest (one line per track) lands under
``<output>/<run date>/_musicai_manifest/``; XCom gets only a summary. A retry, or a worker killed
mid-way, resumes where it stopped without a second job for any track.

The default ``catalog`` is a local folder the DAG seeds with a few demo WAVs when it is empty, so
the example runs as written.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import Param, dag, task

from airflow_provider_musicai.operators.catalog import MusicAICatalogOperator

BASE_DIR = os.environ.get("MUSICAI_EXAMPLE_OUTPUT_DIR") or os.path.join(
    tempfile.gettempdir(), "musicai-example"
)
POLL_INTERVAL = float(os.environ.get("MUSICAI_EXAMPLE_POLL_INTERVAL", "10"))


def _demo_wav(frequency: float, seconds: float = 1.0, rate: int = 22050) -> bytes:
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
    dag_id="example_musicai_catalog_at_scale",
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["example", "musicai"],
    default_args={"retries": 3, "retry_delay": timedelta(minutes=1)},
    params={
        "catalog": Param(f"file://{BASE_DIR}/catalog-at-scale", type="string", description="Prefix"),
        "output": Param(f"file://{BASE_DIR}/catalog-at-scale-results", type="string"),
        "workflow": Param("music-ai/beats-chords-key", type="string"),
    },
    doc_md=__doc__,
)
def example_musicai_catalog_at_scale() -> None:
    @task
    def seed_demo_catalog(params: dict[str, Any] | None = None) -> None:
        """Put a few demo WAVs in the default local catalog when it is empty (a demo convenience)."""
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        assert params is not None
        root = ObjectStoragePath(params["catalog"])
        if root.protocol in ("file", "local") and not (root.exists() and any(root.iterdir())):
            for album, name, frequency in (("a", "a4", 440.0), ("a", "c5", 523.25), ("b", "e5", 659.25)):
                (root / album).mkdir(parents=True, exist_ok=True)
                (root / album / f"{name}.wav").write_bytes(_demo_wav(frequency))

    # [START howto_operator_musicai_catalog]
    catalog = MusicAICatalogOperator(
        task_id="catalog",
        sources="{{ params.catalog }}",
        workflow="{{ params.workflow }}",
        workflow_params={"inputUrl": "{source}"},  # "{source}": each track's uploaded URL
        # The run's date; a run without a logical date (Airflow 3: triggered by an asset, or by the
        # API without one) has no ``ds`` and takes the date it was triggered.
        destination="{{ params.output }}/{{ ds if ds is defined else dag_run.run_after | ds }}",
        max_in_flight=50,  # at most this many jobs at once (your plan's concurrent-job limit)
        upload_concurrency=4,
        max_failed_fraction=0.02,  # up to 2% of the tracks may fail without failing the task
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        delete_after=True,  # results are downloaded: no need to keep the jobs
    )
    # [END howto_operator_musicai_catalog]

    @task
    def report(summary: dict[str, Any]) -> dict[str, Any]:
        """Log the run's counts and where the manifest is."""
        print(
            f"{summary['succeeded']} of {summary['total']} track(s) processed, {summary['failed']} failed; "
            f"manifest: {summary['manifest']}"
        )
        return summary

    seed_demo_catalog() >> catalog
    report(catalog.output)


dag = example_musicai_catalog_at_scale()
