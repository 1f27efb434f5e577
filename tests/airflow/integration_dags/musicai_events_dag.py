"""A DAG run per finished Music AI job, through the real triggerer and scheduler (Airflow 3)."""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import Asset, AssetWatcher, dag, task

from airflow_provider_musicai.triggers.events import MusicAIJobEventTrigger

finished = Asset(
    "musicai-events-it",
    watchers=[
        AssetWatcher(
            name="musicai_events_it",
            trigger=MusicAIJobEventTrigger(
                metadata={"origin": "events-it"}, since=os.environ["MUSICAI_EVENTS_SINCE"], poll_interval=1
            ),
        )
    ],
)


@dag(dag_id="musicai_events_it", schedule=[finished])
def musicai_events_it() -> None:
    @task
    def handle(triggering_asset_events: Any = None) -> list[str]:
        """Every job this run carries (one run may carry several): their ids."""
        return [event.extra["payload"]["job_id"] for event in triggering_asset_events[finished]]

    handle()


musicai_events_it()
