"""What the catalog benchmarks share: a folder of short tracks, the emulator they run against, and
one catalog operator driven to its end in this process (each deferral's trigger run in-line, as
``dag.test()`` does), so that ``catalog.py`` and ``catalog_incremental.py`` measure the same way.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORKFLOW = "music-ai/stems-vocals-accompaniment"


def write_tracks(folder: Path, tracks: int) -> list[Path]:
    """``tracks`` identical 50 ms WAV files in 100 album folders below ``folder``."""
    from tests.helpers.audio import wav_bytes

    data = wav_bytes(0.05, rate=8000)
    paths = []
    for n in range(tracks):
        path = folder / f"album{n % 100:02d}" / f"track{n:06d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths


@contextmanager
def catalog_emulator(home: Path, concurrent: int = 100) -> Iterator[Any]:
    """An emulator whose jobs finish at once, set as ``musicai_default`` for this process."""
    from airflow_provider_musicai.testing.emulator.control import EmulatorServer

    config = {"max_concurrent_jobs": concurrent, "queued_seconds": 0.0, "processing_seconds": 0.0}
    with EmulatorServer(config=config, storage_dir=home / "blobs") as emu:
        os.environ["AIRFLOW_CONN_MUSICAI_DEFAULT"] = json.dumps(
            {**emu.connection_dict(), "extra": json.dumps({"max_retries": 5, "retry_backoff": 0.1})}
        )
        yield emu


def allow_execute_outside_a_task() -> None:
    """Let ``operator.execute`` run without a task runner (Airflow's own test mode)."""
    try:
        from airflow.sdk.bases.operator import ExecutorSafeguard
    except ImportError:  # Airflow 2
        from airflow.models.baseoperator import ExecutorSafeguard  # type: ignore[no-redef]
    ExecutorSafeguard.test_mode = True


@dataclass
class InlineRun:
    """How one operator run went: its return value and what its deferrals cost."""

    summary: Any
    wake_ups: int
    largest_trigger_kwargs_bytes: int


def run_inline(operator: Any, context: dict[str, Any]) -> InlineRun:
    """``execute``, then each deferral's trigger until its first event and ``execute_complete``."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    async def first_event(trigger: Any) -> Any:
        events = [event.payload async for event in trigger.run()]
        return events[0]

    wake_ups = 0
    largest = 0
    step = lambda: operator.execute(context)  # noqa: E731
    while True:
        try:
            return InlineRun(step(), wake_ups, largest)
        except TaskDeferred as deferred:
            wake_ups += 1
            largest = max(largest, len(json.dumps(deferred.trigger.serialize()[1])))
            event = asyncio.run(first_event(deferred.trigger))
            step = lambda e=event: operator.execute_complete(context, e)  # noqa: E731
