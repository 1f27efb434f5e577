"""Fixtures of the emulator tests: a fast-configured emulator and a small API client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_musicai.testing import EmulatorServer
from tests.helpers.audio import wav_bytes

STEMS = "music-ai/stems-vocals-accompaniment"
TRANSCRIBE = "music-ai/transcribe-vocals"
BEATS = "music-ai/beats-chords-key"


class Api:
    """A plain ``requests`` client of the emulator, one Session per API key."""

    def __init__(self, emulator: EmulatorServer, key: str | None = None) -> None:
        self.emulator = emulator
        self.url = emulator.api_url
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["Authorization"] = key or emulator.api_key

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.url + path, timeout=10, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.delete(self.url + path, timeout=10, **kwargs)

    def upload(self, data: bytes) -> str:
        """Upload ``data`` and return its download URL."""
        urls = self.get("/upload").json()
        response = requests.put(urls["uploadUrl"], data=data, timeout=10)
        assert response.status_code == 200, response.text
        return str(urls["downloadUrl"])

    def create(self, input_url: str, workflow: str = STEMS, **fields: Any) -> str:
        body = {"name": "test job", "workflow": workflow, "params": {"inputUrl": input_url}, **fields}
        response = self.post("/job", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    def wait(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll until the job is final and return its document."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.get(f"/job/{job_id}/status").json()["status"]
            if status in ("SUCCEEDED", "FAILED"):
                return dict(self.get(f"/job/{job_id}").json())
            time.sleep(0.02)
        raise AssertionError(f"job {job_id} did not finish in {timeout} s")

    def close(self) -> None:
        self.session.close()


@pytest.fixture
def emu(musicai_emulator: EmulatorServer) -> EmulatorServer:
    """The session emulator, reset, with fast job timings (0.05 s queued, 0.1 s processing)."""
    musicai_emulator.admin.configure(queued_seconds=0.05, processing_seconds=0.1)
    return musicai_emulator


@pytest.fixture
def api(emu: EmulatorServer) -> Iterator[Api]:
    """A client authenticated with the default key."""
    client = Api(emu)
    yield client
    client.close()


@pytest.fixture
def other_api(emu: EmulatorServer) -> Iterator[Api]:
    """A client authenticated with the second key."""
    client = Api(emu, emu.other_api_key)
    yield client
    client.close()


@pytest.fixture
def wav() -> bytes:
    """A quarter of a second of 16-bit stereo WAV."""
    return wav_bytes(0.25)


@pytest.fixture
def wav_factory() -> Any:
    """``wav_bytes(seconds, rate, frequency, channels, width)``."""
    return wav_bytes
