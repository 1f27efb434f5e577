"""Fixtures of the reliability suites (chaos, crash, badinput, secrets, fuzz, load).

Airflow runs on a private SQLite database in a temporary AIRFLOW_HOME whose DAGs folder holds the
example DAGs. When ``tests/airflow`` is collected in the same session its conftest has already set
that environment up, and it is reused; run alone, this file sets up the same layout itself.

Sizes: the default is the reduced CI size; ``MUSICAI_RELIABILITY_FULL=1`` runs the full size.
Figures are printed at the end of the session and merged into ``MUSICAI_RELIABILITY_FIGURES``
(a JSON file) when that variable is set.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(HERE), str(REPO / "tests" / "airflow")]

from reliability_support import FIGURES, FULL, LoopbackGuard, signatures_in, write_figures  # noqa: E402

_SHARED_HOME_PREFIX = "musicai-tests-airflow-home-"
_AIRFLOW_ALREADY_IMPORTED = "airflow.settings" in sys.modules


def _own_airflow_home() -> dict[str, str]:
    """A private AIRFLOW_HOME laid out like ``tests/airflow/conftest.py``'s."""
    home = Path(tempfile.mkdtemp(prefix="musicai-reliability-airflow-home-"))
    (home / "dags").mkdir()
    for dag_file in (REPO / "example_dags").glob("example_*.py"):
        (home / "dags" / dag_file.name).symlink_to(dag_file)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES": "airflow.* airflow_provider_musicai.*",
    }


_SHARED = Path(os.environ.get("AIRFLOW_HOME", "")).name.startswith(_SHARED_HOME_PREFIX)
_ENV = {} if _SHARED else _own_airflow_home()
os.environ.update(_ENV)
os.environ["MUSICAI_EXAMPLE_POLL_INTERVAL"] = "0.5"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures the suites recorded; merge them into MUSICAI_RELIABILITY_FIGURES."""
    if not FIGURES:
        return
    terminalreporter.section(f"reliability figures ({'full' if FULL else 'CI'} size)")
    for suite, figures in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{suite}:")
        for name, value in sorted(figures.items()):
            terminalreporter.write_line(f"    {name}: {json.dumps(value, sort_keys=True, default=str)}")
    target = os.environ.get("MUSICAI_RELIABILITY_FIGURES")
    if target:
        write_figures(Path(target))
        terminalreporter.write_line(f"figures merged into {target}")


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """Airflow's metadata database, created once per session."""
    from airflow import settings
    from airflow.configuration import conf

    if _AIRFLOW_ALREADY_IMPORTED and _ENV:  # Airflow was imported before our environment was set
        conf.set("database", "sql_alchemy_conn", _ENV["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        conf.set("core", "dags_folder", _ENV["AIRFLOW__CORE__DAGS_FOLDER"])
        settings.SQL_ALCHEMY_CONN = _ENV["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        settings.dispose_orm()
        settings.configure_orm()
    from airflow.utils import db

    db.initdb()
    return str(settings.SQL_ALCHEMY_CONN)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> LoopbackGuard:
    """No test of these suites may reach a host other than loopback (names are refused unresolved)."""
    guard = LoopbackGuard()
    monkeypatch.setattr(socket, "getaddrinfo", guard.getaddrinfo)
    return guard


@pytest.fixture(autouse=True)
def _allow_direct_execute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Some cases call ``operator.execute()`` directly, outside the task runner."""
    try:
        from airflow.sdk.bases.operator import ExecutorSafeguard
    except ImportError:  # Airflow 2
        from airflow.models.baseoperator import ExecutorSafeguard
    monkeypatch.setattr(ExecutorSafeguard, "test_mode", True)


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
        connection = {**emulator.connection_dict(key), "extra": json.dumps(extra)}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
        return connection

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
    real_find = MusicAIHook._find_after_ambiguity
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

    def find(self: MusicAIHook, *args: Any, **kwargs: Any) -> Any:
        seen.ambiguous_creates += 1
        return real_find(self, *args, **kwargs)

    def seal(self: MusicAIHook, url: str) -> str:
        token = real_seal(self, url)
        seen.sealed.append(token)
        return token

    def download(self: Any, url: str, handle: Any, **kwargs: Any) -> int:
        seen.urls.append(url)
        return real_download(self, url, handle, **kwargs)

    monkeypatch.setattr(MusicAIHook, "get_upload_url", get_upload_url)
    monkeypatch.setattr(MusicAIHook, "get_job", get_job)
    monkeypatch.setattr(MusicAIHook, "_find_after_ambiguity", find)
    monkeypatch.setattr(MusicAIHook, "seal", seal)
    monkeypatch.setattr(_storage.StorageClient, "download", download)
    return seen
