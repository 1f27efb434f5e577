"""Connection settings: malformed API keys are refused locally (both transports, nothing sent),
the ``ca_bundle``/``verify`` extras govern TLS on both transports and the storage session, and
``test_connection`` answers fast with a hint at the likely mistake."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hostile import HostileServer, Reply, Request

from airflow_provider_musicai.exceptions import MusicAIConfigurationError
from airflow_provider_musicai.hooks.musicai import MusicAIHook

KEY = "mk-test-0123456789abcdef"
QUICK = {"retry_backoff": 0.01, "retry_max_wait": 0.02, "max_retries": 2, "timeout": 5}

HookOn = Callable[..., MusicAIHook]


@pytest.fixture
def hook_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[HookOn]:
    """Hooks on a connection (``musicai_settings`` unless named) to ``host``, with ``KEY``."""
    hooks: list[MusicAIHook] = []

    def build(host: str, password: str = KEY, conn_id: str = "musicai_settings", **extra: Any) -> MusicAIHook:
        connection = {
            "conn_type": "musicai",
            "host": host,
            "password": password,
            "extra": json.dumps({**QUICK, **extra}),
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
        hook = MusicAIHook(musicai_conn_id=conn_id)
        hooks.append(hook)
        return hook

    yield build
    for hook in hooks:
        hook.close()


def application(request: Request) -> Reply:
    return Reply(200, json_body={"id": "app-1", "name": "Test app"})


# -- malformed keys (issue 8 item 14) ----------------------------------------------------------

BAD_KEYS = [
    pytest.param("mk-secret\r\nX-Injected: 1", "a line break (CR/LF)", id="crlf"),
    pytest.param("mk-secret\nmore", "a line break (CR/LF)", id="lf"),
    pytest.param("mk-secret\x00more", "a control character", id="nul"),
    pytest.param("mk-secret\tmore", "a control character", id="tab"),
    pytest.param("mk-secret more", "whitespace", id="inner-space"),
    pytest.param("mk-secret\u00e9more", "a non-ASCII character", id="latin-1-letter"),
    pytest.param("mk-secret\u043a\u043b\u044e\u0447", "a non-ASCII character", id="cyrillic"),
    pytest.param("mk-secret\u2003more", "whitespace", id="em-space"),
]


@pytest.mark.parametrize(("password", "problem"), BAD_KEYS)
def test_a_malformed_key_is_refused_locally_on_both_transports(
    hook_on: HookOn, password: str, problem: str
) -> None:
    with HostileServer(application) as server:
        hook = hook_on(server.url("/v1"), password=password)
        with pytest.raises(MusicAIConfigurationError) as sync_error:
            hook.get_application()
        with pytest.raises(MusicAIConfigurationError) as async_error:
            asyncio.run(hook_on(server.url("/v1"), password=password).aget_application())
        ok, message = hook_on(server.url("/v1"), password=password).test_connection()
        assert server.requests == []  # nothing was sent
    assert not ok
    for text in (str(sync_error.value), str(async_error.value), message):
        assert problem in text and "Nothing was sent" in text, text
        assert "secret" not in text and "more" not in text, text  # no part of the key is shown
    assert str(sync_error.value) == str(async_error.value)


@pytest.mark.parametrize("password", ["   ", "\t\r\n"])
def test_a_whitespace_only_key_is_refused_locally(hook_on: HookOn, password: str) -> None:
    with HostileServer(application) as server:
        with pytest.raises(MusicAIConfigurationError, match="only of whitespace"):
            hook_on(server.url("/v1"), password=password).get_application()
        with pytest.raises(MusicAIConfigurationError, match="only of whitespace"):
            asyncio.run(hook_on(server.url("/v1"), password=password).aget_application())
        assert server.requests == []


def test_surrounding_whitespace_is_trimmed_and_the_key_works(hook_on: HookOn) -> None:
    with HostileServer(application) as server:
        assert hook_on(server.url("/v1"), password=f"  {KEY}\r\n").get_application()["id"] == "app-1"
        assert asyncio.run(hook_on(server.url("/v1"), password=f"\t{KEY} ").aget_application())
        assert {request.headers["authorization"] for request in server.requests} == {KEY}
