"""Fixtures of the reliability suites (chaos, crash, badinput, secrets, fuzz, load).

The environment (AIRFLOW_HOME, database, DAGs folder) is the root ``tests/conftest.py``'s, which also
prints the figures these suites record. Sizes: the default is the reduced CI size;
``MUSICAI_RELIABILITY_FULL=1`` runs the full size (see ``tests/helpers/reliability.py``).
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.hooks import set_connection
from tests.helpers.reliability import LoopbackGuard, signatures_in


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> LoopbackGuard:
    """No test of these suites may reach a host other than loopback (names are refused unresolved)."""
    guard = LoopbackGuard()
    monkeypatch.setattr(socket, "getaddrinfo", guard.getaddrinfo)
    return guard


@pytest.fixture(autouse=True)
def _direct_execute(allow_direct_execute: None) -> None:
    """Some cases call ``operator.execute()`` directly, outside the task runner."""


@pytest.fixture
def emulator(musicai_emulator: Any) -> Any:
    """The session's emulator, reset (jobs, blobs, faults, counters, config)."""
    return musicai_emulator


@pytest.fixture
def storage_dir(emulator: Any) -> Path:
    """Where the emulator keeps its blobs (``objects/``) and partial uploads (``tmp/``)."""
    return Path(emulator.info["storage_dir"])


@pytest.fixture
def connect(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, Any]]:
    """``connect(conn_id="musicai_default", key=None, **extra)``: point an Airflow connection (an
    ``AIRFLOW_CONN_*`` variable) at the emulator with these extras; returns the connection dict."""

    def point(conn_id: str = "musicai_default", key: str | None = None, **extra: Any) -> dict[str, Any]:
        return set_connection(monkeypatch, conn_id, emulator, key=key or None, extra=extra)

    return point


class HookSpy:
    """Records what the hook saw (every signed URL, sealed token) and how often it had to look a
    job up after a lost POST /job answer. Pass-through: behaviour is unchanged."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.sealed: list[str] = []
        self.signatures: set[str] = set()
        self.ambiguous_creates = 0

    def saw(self, outcome: Any) -> Any:
        """Collect the signatures of every signed URL in an API answer."""
        body = getattr(outcome, "body", None)
        if isinstance(body, bytes):
            self.signatures |= signatures_in(body.decode("utf-8", "replace"))
        return outcome


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> HookSpy:
    """A :class:`HookSpy` on every MusicAIHook of this process."""
    from airflow_provider_musicai.hooks import _storage, _transport
    from airflow_provider_musicai.hooks.musicai import MusicAIHook

    seen = HookSpy()
    real_send = _transport.SyncTransport.send
    real_asend = _transport.AsyncTransport.send

    def send(self: Any, request: Any) -> Any:
        return seen.saw(real_send(self, request))

    async def asend(self: Any, request: Any) -> Any:
        return seen.saw(await real_asend(self, request))

    monkeypatch.setattr(_transport.SyncTransport, "send", send)
    monkeypatch.setattr(_transport.AsyncTransport, "send", asend)
    real_upload_url = MusicAIHook.get_upload_url
    real_get_job = MusicAIHook.get_job
    real_call = MusicAIHook._call
    real_seal = MusicAIHook.seal
    real_download = _storage.StorageClient.download

    def get_upload_url(self: MusicAIHook) -> dict[str, str]:
        urls = real_upload_url(self)
        seen.urls.extend(urls.values())
        return urls

    def get_job(self: MusicAIHook, job_id: str) -> dict[str, Any]:
        job = real_get_job(self, job_id)
        for value in (job.get("result") or {}).values():
            if isinstance(value, str) and value.startswith("http"):
                seen.urls.append(value)
        input_url = (job.get("workflowParams") or {}).get("inputUrl")
        if isinstance(input_url, str):
            seen.urls.append(input_url)
        return job

    def call(self: MusicAIHook, *args: Any, lookup: Any = None, **kwargs: Any) -> Any:
        """Counts the idempotency lookups the retry plan asks for after a lost POST /job answer."""
        if lookup is not None:
            real_find = lookup.find

            def find() -> Any:
                seen.ambiguous_creates += 1
                return real_find()

            lookup = dataclasses.replace(lookup, find=find)
        return real_call(self, *args, lookup=lookup, **kwargs)

    def seal(self: MusicAIHook, url: str) -> str:
        token = real_seal(self, url)
        seen.sealed.append(token)
        return token

    def download(self: Any, url: str, handle: Any, **kwargs: Any) -> int:
        seen.urls.append(url)
        return real_download(self, url, handle, **kwargs)

    monkeypatch.setattr(MusicAIHook, "get_upload_url", get_upload_url)
    monkeypatch.setattr(MusicAIHook, "get_job", get_job)
    monkeypatch.setattr(MusicAIHook, "_call", call)
    monkeypatch.setattr(MusicAIHook, "seal", seal)
    monkeypatch.setattr(_storage.StorageClient, "download", download)
    return seen
