"""Airflow-side fixtures: the emulator as ``musicai_default``, a hook on it, uploaded inputs, contexts,
and ``deploy`` (Airflow as real processes on that emulator).

The environment (AIRFLOW_HOME, database, DAGs folder) is the root ``tests/conftest.py``'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import FAST_RETRIES
from tests.helpers.airflow import Deployment, FakeStateStore, FakeTI, deployed
from tests.helpers.audio import wav_bytes

#: Fewer retries than the hook tests': the sensor and trigger tests count attempts per poll.
RETRIES = {**FAST_RETRIES, "max_retries": 2}


@pytest.fixture(autouse=True)
def _direct_execute(allow_direct_execute: None) -> None:
    """Unit tests call ``operator.execute()`` directly, outside the task runner."""


@pytest.fixture
def musicai(musicai_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The reset emulator, with ``musicai_default`` pointing at it (quick retries for fault tests)."""
    from tests.helpers.hostile_hook import set_connection

    set_connection(
        monkeypatch, "musicai_default", musicai_emulator.api_url, key=musicai_emulator.api_key, extra=RETRIES
    )
    return musicai_emulator


@pytest.fixture
def deploy(musicai: Any, tmp_path: Path, airflow_db_template: Path) -> Iterator[Callable[..., Deployment]]:
    """``deploy(dags=..., **options)``: a private Airflow as real processes (:func:`deployed`), its
    ``musicai_default`` on the emulator, started and its ``dags`` parsed; stopped after the test."""
    with contextlib.ExitStack() as running:

        def start(**options: Any) -> Deployment:
            return running.enter_context(
                deployed(
                    tmp_path / "airflow-home",
                    musicai,
                    extra={"timeout": 10},
                    db_template=airflow_db_template,
                    **options,
                )
            )

        yield start


@pytest.fixture
def hook(musicai: Any) -> Iterator[Any]:
    """A MusicAIHook on the emulator."""
    from airflow_provider_musicai.hooks.musicai import MusicAIHook

    hook = MusicAIHook()
    yield hook
    hook.close()


@pytest.fixture
def input_url(hook: Any, tmp_path: Path) -> Callable[..., str]:
    """Upload a small WAV (or ``data`` bytes) and return its ``downloadUrl`` sealed, as the upload
    operator returns it: what DAGs carry, so no test puts a signed URL into Airflow's database (the
    DAG tests scan it for signatures, and xdist workers share it between tests)."""

    def upload(data: bytes | None = None, name: str = "track.wav") -> str:
        path = tmp_path / name
        path.write_bytes(wav_bytes(0.5) if data is None else data)
        return str(hook.seal(hook.upload_file(str(path))))

    return upload


@pytest.fixture
def make_context() -> Callable[..., dict[str, Any]]:
    """``make_context(ti, store=None)``: a minimal execution context."""

    def build(ti: FakeTI | None = None, store: FakeStateStore | None = None) -> dict[str, Any]:
        context: dict[str, Any] = {"ti": ti or FakeTI()}
        if store is not None:
            context["task_state_store"] = store
        return context

    return build
