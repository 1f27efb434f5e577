"""An asset event of our own on the example's watched asset: on Airflow 3.1-3.3 the events an
earlier run left behind run with it (the workaround in docs/howto/job_events.rst).

The asset is declared with the example's very watcher: a DAG file that names a watched asset
without its watchers detaches them each time it is parsed (the DAG processor compares each file's
watchers with the database's), and the watcher is cancelled and started again over and over."""

from __future__ import annotations

import os

from airflow.sdk import Asset, AssetWatcher, dag, task

from airflow_provider_musicai.triggers.events import MusicAIJobEventTrigger

finished_stems = Asset(
    "musicai-finished-stems",
    watchers=[
        AssetWatcher(
            name="musicai_finished_stems",
            trigger=MusicAIJobEventTrigger(
                workflow="music-ai/stems-vocals-accompaniment",
                statuses=("SUCCEEDED",),
                poll_interval=float(os.environ.get("MUSICAI_EXAMPLE_POLL_INTERVAL", "30")),
            ),
        )
    ],
)


@dag(dag_id="musicai_events_flush", schedule=None)
def musicai_events_flush() -> None:
    @task(outlets=[finished_stems])
    def flush() -> None:
        """Nothing to do: finishing with the asset in its outlets is the event."""

    flush()


musicai_events_flush()
