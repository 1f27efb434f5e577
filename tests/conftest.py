"""Fixtures shared by every test folder.

Airflow is pointed at a private, temporary AIRFLOW_HOME before anything imports it, so tests never
read or write ``~/airflow``. ``make_hook``/``hook`` give hooks on connections to the session's
emulator with quick retries; ``wav_file`` a small stereo WAV.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_musicai.hooks.musicai import MusicAIHook

# Set when pytest imports this file, i.e. before any test module imports Airflow.
_HOME = tempfile.mkdtemp(prefix="musicai-tests-home-")
os.environ["AIRFLOW_HOME"] = _HOME
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME}/airflow.db"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

FAST_RETRIES = {"retry_backoff": 0.01, "retry_max_wait": 0.05, "max_retries": 4, "timeout": 5}


@pytest.fixture
def make_hook(musicai_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., MusicAIHook]]:
    """Build hooks on connections to the emulator (``key`` and ``extra`` override the defaults)."""
    hooks: list[MusicAIHook] = []

    from airflow_provider_musicai.hooks.musicai import MusicAIHook

    def build(conn_id: str = "musicai_test", key: str | None = None, **extra: Any) -> MusicAIHook:
        connection = musicai_emulator.connection_dict(key)
        connection["extra"] = json.dumps({**FAST_RETRIES, **extra})
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
        hook = MusicAIHook(musicai_conn_id=conn_id)
        hooks.append(hook)
        return hook

    yield build
    for hook in hooks:
        hook.close()


@pytest.fixture
def hook(make_hook: Callable[..., MusicAIHook]) -> MusicAIHook:
    return make_hook()


def write_wav(path: Path, seconds: float = 1.0, rate: int = 8000) -> Path:
    """A small stereo 16-bit WAV with different content on each channel."""
    frames = bytearray()
    for i in range(int(seconds * rate)):
        frames += struct.pack("<hh", int(9000 * math.sin(i / 9)), int(4000 * math.sin(i / 5)))
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(2)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(bytes(frames))
    return path


@pytest.fixture
def wav_file(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "track.wav")
