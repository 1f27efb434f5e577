"""Connection settings: malformed API keys are refused locally (both transports, nothing sent),
the ``ca_bundle``/``verify`` extras govern TLS on both transports and the storage session, and
``test_connection`` answers fast with a hint at the likely mistake."""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_musicai.exceptions import MusicAIConfigurationError, MusicAITransportError
from airflow_provider_musicai.hooks.musicai import MusicAIHook
from tests.helpers.hooks import HookOn
from tests.helpers.hostile import HostileServer, Reply, Request
from tests.helpers.tls import HttpsServer, make_ca_and_server_cert

KEY = "mk-test-0123456789abcdef"


@pytest.fixture
def hook_on(hook_on: HookOn) -> HookOn:
    """Hooks on a connection (``musicai_settings`` unless named) to ``host``, with ``KEY``."""
    return functools.partial(hook_on, key=KEY, conn_id="musicai_settings")


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
        hook = hook_on(server.url("/v1"), key=password)
        with pytest.raises(MusicAIConfigurationError) as sync_error:
            hook.get_application()
        with pytest.raises(MusicAIConfigurationError) as async_error:
            asyncio.run(hook_on(server.url("/v1"), key=password).aget_application())
        ok, message = hook_on(server.url("/v1"), key=password).test_connection()
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
            hook_on(server.url("/v1"), key=password).get_application()
        with pytest.raises(MusicAIConfigurationError, match="only of whitespace"):
            asyncio.run(hook_on(server.url("/v1"), key=password).aget_application())
        assert server.requests == []


def test_surrounding_whitespace_is_trimmed_and_the_key_works(hook_on: HookOn) -> None:
    with HostileServer(application) as server:
        assert hook_on(server.url("/v1"), key=f"  {KEY}\r\n").get_application()["id"] == "app-1"
        assert asyncio.run(hook_on(server.url("/v1"), key=f"\t{KEY} ").aget_application())
        assert {request.headers["authorization"] for request in server.requests} == {KEY}


# -- TLS: ca_bundle and verify (issue 8 item 19) -----------------------------------------------


def storage_and_api(request: Request, port: list[int]) -> Reply:
    if request.path == "/v1/upload":
        base = f"https://127.0.0.1:{port[0]}/bucket/track.wav"
        return Reply(200, json_body={"uploadUrl": f"{base}?sig=up", "downloadUrl": f"{base}?sig=down"})
    if request.method == "PUT":
        return Reply(200)
    return application(request)


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[HttpsServer]:
    port: list[int] = []
    with HttpsServer(lambda request: storage_and_api(request, port), tmp_path) as server:
        port.append(server.port)
        yield server


def test_an_untrusted_certificate_fails_at_once_with_a_typed_error_sync(
    hook_on: HookOn, https_server: HttpsServer
) -> None:
    hook = hook_on(https_server.url("/v1"), max_retries=5, retry_backoff=30)  # a retry would sleep
    with pytest.raises(MusicAITransportError, match="TLS certificate verification failed") as raised:
        hook.get_application()
    assert f"127.0.0.1:{https_server.port}" in str(raised.value) and '"ca_bundle"' in str(raised.value)
    assert https_server.requests == []


def test_an_untrusted_certificate_fails_at_once_with_a_typed_error_async(
    hook_on: HookOn, https_server: HttpsServer
) -> None:
    hook = hook_on(https_server.url("/v1"), max_retries=5, retry_backoff=30)
    with pytest.raises(MusicAITransportError, match="TLS certificate verification failed") as raised:
        asyncio.run(hook.aget_application())
    assert '"ca_bundle"' in str(raised.value)


def test_ca_bundle_is_trusted_by_the_api_and_storage_sessions(
    hook_on: HookOn, https_server: HttpsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An environment that points requests elsewhere must not win over the connection's setting.
    (tmp_path / "other").mkdir()
    other_ca, _, _ = make_ca_and_server_cert(tmp_path / "other")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other_ca))
    hook = hook_on(https_server.url("/v1"), ca_bundle=str(https_server.ca_file))
    assert hook.get_application()["id"] == "app-1"
    track = tmp_path / "track.wav"
    track.write_bytes(b"RIFF" + b"\0" * 100)
    assert hook.upload_file(str(track)).startswith(https_server.url("/bucket/track.wav"))
    assert [r.method for r in https_server.requests] == ["GET", "GET", "PUT"]


def test_ca_bundle_is_trusted_by_the_async_client(
    hook_on: HookOn, https_server: HttpsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_musicai.hooks._transport import close_shared_async_clients

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    untrusting = hook_on(https_server.url("/v1"))
    trusting = hook_on(https_server.url("/v1"), conn_id="musicai_ca", ca_bundle=str(https_server.ca_file))

    async def both() -> dict[str, Any]:
        try:
            with pytest.raises(MusicAITransportError, match="certificate"):
                await untrusting.aget_application()
            # Same loop, same API URL: the shared client must not be the untrusting one.
            return await trusting.aget_application()
        finally:
            await close_shared_async_clients()

    assert asyncio.run(both())["id"] == "app-1"


@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")
def test_verify_false_works_on_both_transports_and_warns(
    hook_on: HookOn, https_server: HttpsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="airflow_provider_musicai")
    hook = hook_on(https_server.url("/v1"), verify=False)
    assert hook.get_application()["id"] == "app-1"
    assert asyncio.run(hook_on(https_server.url("/v1"), verify="false").aget_application())["id"] == "app-1"
    assert any("verification is OFF" in record.getMessage() for record in caplog.records)


def test_unusable_tls_extras_are_named(hook_on: HookOn, tmp_path: Path) -> None:
    with pytest.raises(MusicAIConfigurationError, match=r"'ca_bundle'.*is not a file"):
        hook_on("https://127.0.0.1:1/v1", ca_bundle=str(tmp_path / "missing.pem")).get_application()
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(MusicAIConfigurationError, match="no usable PEM certificate"):
        hook_on("https://127.0.0.1:1/v1", ca_bundle=str(junk)).get_application()
    with pytest.raises(MusicAIConfigurationError, match="'verify' must be true or false"):
        hook_on("https://127.0.0.1:1/v1", verify="perhaps").get_application()


# -- test_connection (issue 8 item 21) ---------------------------------------------------------


def test_test_connection_succeeds_on_the_emulator(hook: MusicAIHook) -> None:
    ok, message = hook.test_connection()
    assert ok and message.startswith("Connected to Music AI application"), message


def test_a_base_url_without_v1_gets_a_did_you_mean(hook_on: HookOn, musicai_emulator: Any) -> None:
    root = musicai_emulator.api_url.removesuffix("/v1")
    ok, message = hook_on(root, key=musicai_emulator.api_key).test_connection()
    assert not ok and f"did you mean {root}/v1?" in message, message
    assert "it is not the Music AI API" in message and "job" not in message, message


def test_https_to_a_plain_http_server_suggests_http(hook_on: HookOn) -> None:
    with HostileServer(application) as server:
        https_url = server.url("/v1").replace("http://", "https://")
        ok, message = hook_on(https_url, max_retries=5, retry_backoff=30).test_connection()
        assert not ok and "did you mean http://?" in message, message
        with pytest.raises(MusicAITransportError, match=r"did you mean http://\?"):
            hook_on(https_url, max_retries=5, retry_backoff=30).get_application()
        with pytest.raises(MusicAITransportError, match=r"did you mean http://\?"):
            asyncio.run(hook_on(https_url, max_retries=5, retry_backoff=30).aget_application())


def test_an_unreachable_port_is_named(hook_on: HookOn) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ok, message = hook_on(f"http://127.0.0.1:{port}/v1", max_retries=5, retry_backoff=30).test_connection()
    assert not ok and f"Cannot connect to 127.0.0.1:{port}" in message, message


def test_test_connection_makes_a_single_attempt(hook_on: HookOn) -> None:
    with HostileServer(lambda request: Reply(503, json_body={"message": "busy"})) as server:
        ok, message = hook_on(server.url("/v1"), max_retries=5, retry_backoff=30).test_connection()
        assert not ok and "HTTP 503" in message
        assert len(server.requests) == 1


def test_the_tls_extras_are_in_the_connection_form() -> None:
    from airflow_provider_musicai.get_provider_info import CONN_FIELDS
    from airflow_provider_musicai.hooks._config import ConnectionConfig

    assert CONN_FIELDS["ca_bundle"]["schema"]["type"] == ["string", "null"]
    assert CONN_FIELDS["verify"]["schema"]["default"] is ConnectionConfig("https://x/v1", KEY).verify is True
