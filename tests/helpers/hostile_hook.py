"""Hooks on connections to hostile servers (tests/helpers/hostile.py), and a runner for async scenarios."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from airflow_provider_musicai.hooks._transport import close_shared_async_clients
from airflow_provider_musicai.hooks.musicai import MusicAIHook

KEY = "hostile-test-key-0123456789"
FAST = {"retry_backoff": 0.01, "retry_max_wait": 0.05, "max_retries": 2, "timeout": 5}


def hostile_hook(
    monkeypatch: pytest.MonkeyPatch, url: str, conn_id: str = "hostile", **extra: Any
) -> MusicAIHook:
    """A hook whose connection points at ``url`` with quick retries and these extras."""
    connection = {
        "conn_type": "musicai",
        "host": url,
        "password": KEY,
        "extra": json.dumps({**FAST, **extra}),
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    return MusicAIHook(musicai_conn_id=conn_id)


def arun(coroutine: Any) -> Any:
    """Run ``coroutine`` in a fresh loop, closing the loop's pooled clients afterwards."""

    async def main() -> Any:
        try:
            return await coroutine
        finally:
            await close_shared_async_clients()

    return asyncio.run(main())
