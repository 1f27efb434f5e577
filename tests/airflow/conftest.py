"""Airflow-side fixtures: a private AIRFLOW_HOME on SQLite, the emulator connection, DAG-run helpers.

The environment is set when this file is imported, i.e. before any test module of this folder
imports Airflow, so the tests never touch ``~/airflow``. If something imported Airflow earlier
(another folder's conftest in the same session), the database is re-pointed at runtime instead.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_support import FakeStateStore, FakeTI, wav_bytes

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="musicai-tests-airflow-home-"))
DB_URL = f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}"
# The DAGs folder (Airflow 3's dag.test() needs each DAG in a bundle): the examples and the test DAGs.
_REPO = Path(__file__).resolve().parents[2]
(AIRFLOW_HOME / "dags").mkdir()
for _dag_file in [
    *(_REPO / "example_dags").glob("example_*.py"),
    *(Path(__file__).parent / "dags").glob("*.py"),
]:
    (AIRFLOW_HOME / "dags" / _dag_file.name).symlink_to(_dag_file)
_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": DB_URL,
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(AIRFLOW_HOME / "dags"),
    "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES": "airflow.* airflow_provider_musicai.*",
    "MUSICAI_EXAMPLE_POLL_INTERVAL": "0.5",
}
_AIRFLOW_ALREADY_IMPORTED = "airflow.settings" in sys.modules
os.environ.update(_ENV)

FAST_RETRIES = {"retry_backoff": 0.01, "retry_max_wait": 0.05, "max_retries": 2, "timeout": 5}


def _repoint_database() -> None:
    """Airflow was imported before this conftest: move its ORM to our private SQLite file."""
    from airflow import settings
    from airflow.configuration import conf

    conf.set("database", "sql_alchemy_conn", DB_URL)
    conf.set("core", "dags_folder", _ENV["AIRFLOW__CORE__DAGS_FOLDER"])
    settings.SQL_ALCHEMY_CONN = DB_URL
    settings.dispose_orm()
    settings.configure_orm()


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """Airflow's metadata database, created once per session (about 2 s)."""
    if _AIRFLOW_ALREADY_IMPORTED:
        _repoint_database()
    from airflow.utils import db

    db.initdb()
    return DB_URL


@pytest.fixture(autouse=True)
def _allow_direct_execute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests call ``operator.execute()`` directly, outside the task runner."""
    try:
        from airflow.sdk.bases.operator import ExecutorSafeguard
    except ImportError:  # Airflow 2
        from airflow.models.baseoperator import ExecutorSafeguard
    monkeypatch.setattr(ExecutorSafeguard, "test_mode", True)


@pytest.fixture
def musicai(musicai_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The reset emulator, with ``musicai_default`` pointing at it (quick retries for fault tests)."""
    connection = {**musicai_emulator.connection_dict(), "extra": json.dumps(FAST_RETRIES)}
    monkeypatch.setenv("AIRFLOW_CONN_MUSICAI_DEFAULT", json.dumps(connection))
    return musicai_emulator


@pytest.fixture
def hook(musicai: Any) -> Iterator[Any]:
    """A MusicAIHook on the emulator."""
    from airflow_provider_musicai.hooks.musicai import MusicAIHook

    hook = MusicAIHook()
    yield hook
    hook.close()


@pytest.fixture
def input_url(hook: Any, tmp_path: Path) -> Callable[..., str]:
    """Upload a small WAV (or ``data`` bytes) and return its signed ``downloadUrl``."""

    def upload(data: bytes | None = None, name: str = "track.wav") -> str:
        path = tmp_path / name
        path.write_bytes(wav_bytes() if data is None else data)
        return str(hook.upload_file(str(path)))

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
