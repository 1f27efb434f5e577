"""Catalog fixtures: the Airflow-side fixtures of tests/airflow, and a folder of small WAVs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.airflow.conftest import _direct_execute, hook, input_url, make_context, musicai  # noqa: F401
from tests.helpers.audio import wav_bytes


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
