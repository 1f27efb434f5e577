"""Catalog fixtures: as in tests/airflow (direct ``execute()``, fewer retries for ``musicai_default``),
and a folder of small WAVs. ``musicai``, ``hook``, ``input_url`` and ``make_context`` are the root
conftest's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import AIRFLOW_RETRIES
from tests.helpers.audio import wav_bytes


@pytest.fixture(autouse=True)
def _direct_execute(allow_direct_execute: None) -> None:
    """The catalog tests call ``operator.execute()`` directly, outside the task runner."""


@pytest.fixture
def musicai_extra() -> dict[str, Any]:
    """``musicai_default`` takes fewer retries here than in the hook tests."""
    return AIRFLOW_RETRIES


@pytest.fixture
def make_catalog(tmp_path: Path) -> Callable[..., Path]:
    """``make_catalog(count)``: a folder of ``count`` tiny WAVs in two sub-folders."""

    def build(count: int, name: str = "catalog") -> Path:
        folder = tmp_path / name
        data = wav_bytes(0.05, rate=8000)
        for n in range(count):
            path = folder / f"album{n % 2}" / f"track{n:06d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return folder

    return build
