"""pytest fixtures for the Music AI emulator (registered through the ``pytest11`` entry point).

* ``musicai_emulator_server`` (session): one emulator subprocess for the whole session.
* ``musicai_emulator`` (function): the same emulator, reset (jobs, blobs, faults, counters, config) first.
* ``musicai_connection_env`` (function): ``musicai_emulator`` with ``AIRFLOW_CONN_MUSICAI_DEFAULT`` set.
* ``musicai_emulator_options`` (session): keyword arguments of ``EmulatorServer``; override it in a
  ``conftest.py`` to change ports, keys, timings, ``config``, ``workflows``, ``https``, ``input_files``.
  ``MUSICAI_EMULATOR_LOG=<path>`` keeps the emulator's log.

Per test, markers change the (reset) emulator for that test only:

* ``@pytest.mark.musicai_workflows({"slug": "sdk-test", "inputs": [...], "outputs": [...]}, ...)``
  declares workflows (see :mod:`.emulator.catalog`);
* ``@pytest.mark.musicai_config(max_concurrent_jobs=2, manual_clock=True)`` changes runtime config;
* ``@pytest.mark.musicai_input_files({"https://music.ai/demo.ogg": "tests/data/demo.ogg"})`` serves
  external input URLs from local files.

This module imports nothing heavy at import time: the emulator loads inside the fixtures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .emulator.control import EmulatorServer


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers of this plugin."""
    for line in (
        "musicai_workflows(*declarations): workflows the emulator declares for this test",
        "musicai_config(**changes): emulator runtime config for this test",
        "musicai_input_files(mapping): external input URL -> local file, for this test",
    ):
        config.addinivalue_line("markers", line)


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
def musicai_emulator(
    musicai_emulator_server: EmulatorServer, request: pytest.FixtureRequest
) -> EmulatorServer:
    """The session's emulator, reset before the test (jobs, blobs, faults, counters, config, declared
    workflows and input files), then changed by the test's ``musicai_*`` markers."""
    admin = musicai_emulator_server.admin
    admin.reset(config=True)
    for marker in request.node.iter_markers("musicai_config"):
        admin.configure(**marker.kwargs)
    for marker in request.node.iter_markers("musicai_workflows"):
        for declaration in marker.args:
            admin.declare_workflow(declaration)
    for marker in request.node.iter_markers("musicai_input_files"):
        admin.set_input_files({**(marker.args[0] if marker.args else {}), **marker.kwargs})
    return musicai_emulator_server


@pytest.fixture
def musicai_connection_env(
    musicai_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> EmulatorServer:
    """``musicai_emulator`` with ``AIRFLOW_CONN_MUSICAI_DEFAULT`` pointing at it (JSON form)."""
    monkeypatch.setenv("AIRFLOW_CONN_MUSICAI_DEFAULT", musicai_emulator.connection_json())
    return musicai_emulator
