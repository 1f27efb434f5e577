"""pytest fixtures for the Music AI emulator (registered through the ``pytest11`` entry point).

* ``musicai_emulator_server`` (session): one emulator subprocess for the whole session.
* ``musicai_emulator`` (function): the same emulator, reset (jobs, blobs, faults, counters, config) first.
* ``musicai_connection_env`` (function): ``musicai_emulator`` with ``AIRFLOW_CONN_MUSICAI_DEFAULT`` set.
* ``musicai_emulator_options`` (session): keyword arguments of ``EmulatorServer``; override it in a
  ``conftest.py`` to change ports, keys or timings. ``MUSICAI_EMULATOR_LOG=<path>`` keeps the emulator's log.

This module imports nothing heavy at import time: the emulator loads inside the fixtures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .emulator.control import EmulatorServer


@pytest.fixture(scope="session")
def musicai_emulator_options() -> dict[str, Any]:
    """Keyword arguments for the session's ``EmulatorServer`` (override in a conftest)."""
    log_file = os.environ.get("MUSICAI_EMULATOR_LOG")
    return {"log_file": log_file} if log_file else {}


@pytest.fixture(scope="session")
def musicai_emulator_server(musicai_emulator_options: dict[str, Any]) -> Iterator[EmulatorServer]:
    """A Music AI emulator running in a subprocess for the whole test session."""
    from .emulator.control import EmulatorServer

    with EmulatorServer(**musicai_emulator_options) as server:
        yield server


@pytest.fixture
def musicai_emulator(musicai_emulator_server: EmulatorServer) -> EmulatorServer:
    """The session's emulator, reset before the test (jobs, blobs, faults, counters and config)."""
    musicai_emulator_server.admin.reset(config=True)
    return musicai_emulator_server


@pytest.fixture
def musicai_connection_env(
    musicai_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> EmulatorServer:
    """``musicai_emulator`` with ``AIRFLOW_CONN_MUSICAI_DEFAULT`` pointing at it (JSON form)."""
    monkeypatch.setenv("AIRFLOW_CONN_MUSICAI_DEFAULT", musicai_emulator.connection_json())
    return musicai_emulator
