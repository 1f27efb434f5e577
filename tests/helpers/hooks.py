"""Airflow connections to test servers, and a runner for async scenarios.

:func:`set_connection` points an Airflow connection (an ``AIRFLOW_CONN_*`` variable, set through
``monkeypatch`` so it is undone after the test) at a URL, a :class:`HostileServer`'s ``/v1`` or the
emulator. Hooks are built by the ``hook_on`` fixture (``tests/conftest.py``), the one way to get a
hook on a server: ``hook_on(server, conn_id=..., key=..., **extra)``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers.hostile import HostileServer

if TYPE_CHECKING:
    from airflow_provider_musicai.hooks.musicai import MusicAIHook
    from airflow_provider_musicai.testing import EmulatorServer

#: The API key of connections to hostile servers unless a test names another.
KEY = "hostile-test-key-0123456789"

#: The ``hook_on`` fixture: ``hook_on(where=None, *, conn_id=..., key=..., raw_extra=..., **extra)``.
HookOn = Callable[..., "MusicAIHook"]


def set_connection(
    monkeypatch: pytest.MonkeyPatch,
    conn_id: str,
    where: str | HostileServer | EmulatorServer,
    *,
    key: str | None = None,
    extra: dict[str, Any] | str | None = None,
) -> dict[str, Any]:
    """Point the connection ``conn_id`` at ``where`` (a URL, a hostile server's ``/v1``, or the
    emulator) with the API key ``key`` (default: the emulator's, else :data:`KEY`) and ``extra`` (a
    dict, or a string kept verbatim); returns the connection."""
    if isinstance(where, str):
        host = where
    elif isinstance(where, HostileServer):
        host = where.url("/v1")
    else:
        host, key = where.api_url, where.api_key if key is None else key
    password = KEY if key is None else key
    connection: dict[str, Any] = {"conn_type": "musicai", "host": host, "password": password}
    if extra is not None:
        connection["extra"] = extra if isinstance(extra, str) else json.dumps(extra)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    return connection


def arun(coroutine: Any) -> Any:
    """Run ``coroutine`` in a fresh loop, closing the loop's pooled clients afterwards."""
    # Imported here: the root conftest imports this module before it has set up AIRFLOW_HOME.
    from airflow_provider_musicai.hooks._transport import close_shared_async_clients

    async def main() -> Any:
        try:
            return await coroutine
        finally:
            await close_shared_async_clients()

    return asyncio.run(main())
