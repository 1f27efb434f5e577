"""The one way tests build a hook on a server URL, and a runner for async scenarios.

:func:`set_connection` points an Airflow connection (an ``AIRFLOW_CONN_*`` variable, set through
``monkeypatch`` so it is undone after the test) at a URL or a :class:`HostileServer`'s ``/v1``;
:func:`hook_on_url` makes a hook on such a connection with :data:`tests.helpers.FAST_RETRIES` under
the given extras. :class:`HookBuilder` (the ``hook_on`` fixture; ``make_hook`` uses it on the
emulator) also closes every hook it built.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_musicai.hooks._transport import close_shared_async_clients
from airflow_provider_musicai.hooks.musicai import MusicAIHook
from tests.helpers import FAST_RETRIES

if TYPE_CHECKING:
    from tests.helpers.hostile import HostileServer

KEY = "hostile-test-key-0123456789"


def set_connection(
    monkeypatch: pytest.MonkeyPatch,
    conn_id: str,
    where: str | HostileServer,
    *,
    key: str = KEY,
    extra: dict[str, Any] | str | None = None,
) -> dict[str, Any]:
    """Point the connection ``conn_id`` at ``where`` (a URL, or a hostile server's ``/v1``) with
    the API key ``key`` and ``extra`` (a dict, or a string kept verbatim); returns the connection."""
    connection: dict[str, Any] = {
        "conn_type": "musicai",
        "host": where if isinstance(where, str) else where.url("/v1"),
        "password": key,
    }
    if extra is not None:
        connection["extra"] = extra if isinstance(extra, str) else json.dumps(extra)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    return connection


def hook_on_url(
    monkeypatch: pytest.MonkeyPatch,
    where: str | HostileServer,
    conn_id: str = "musicai_test",
    *,
    key: str = KEY,
    raw_extra: str | None = None,
    **extra: Any,
) -> MusicAIHook:
    """A hook on a connection ``conn_id`` to ``where`` with the key ``key`` and quick retries
    overridden by ``extra`` (or the extra field ``raw_extra``, verbatim, for unreadable extras)."""
    settings = {**FAST_RETRIES, **extra} if raw_extra is None else raw_extra
    set_connection(monkeypatch, conn_id, where, key=key, extra=settings)
    return MusicAIHook(musicai_conn_id=conn_id)


class HookBuilder:
    """`hook_on_url` with defaults (``key``, ``conn_id``, extras) that closes the hooks it built."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, *, key: str = KEY, conn_id: str = "musicai_test", **extra: Any
    ) -> None:
        self.monkeypatch = monkeypatch
        self.key = key
        self.conn_id = conn_id
        self.extra = extra
        self.hooks: list[MusicAIHook] = []

    def __call__(
        self, where: str | HostileServer, *, conn_id: str | None = None, key: str | None = None, **extra: Any
    ) -> MusicAIHook:
        hook = hook_on_url(
            self.monkeypatch,
            where,
            conn_id or self.conn_id,
            key=self.key if key is None else key,
            **{**self.extra, **extra},
        )
        self.hooks.append(hook)
        return hook

    def close(self) -> None:
        for hook in self.hooks:
            hook.close()


def arun(coroutine: Any) -> Any:
    """Run ``coroutine`` in a fresh loop, closing the loop's pooled clients afterwards."""

    async def main() -> Any:
        try:
            return await coroutine
        finally:
            await close_shared_async_clients()

    return asyncio.run(main())
