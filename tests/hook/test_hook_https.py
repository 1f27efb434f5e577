"""The hook over the emulator's HTTPS mode: a private CA trusted through the ``ca_bundle`` extra.

Results are served from their own origin (as the real service's CDN is), so downloads open a TLS
connection to a second host; without ``ca_bundle`` the first call fails with the typed, permanent
certificate error instead of being retried.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_musicai.exceptions import MusicAITransportError
from airflow_provider_musicai.testing import EmulatorServer
from tests.helpers.hooks import HookOn

STEMS = "music-ai/stems-vocals-accompaniment"


@pytest.fixture(scope="module")
def https_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(https=True) as server:
        yield server


@pytest.fixture
def musicai_emulator(https_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    """The HTTPS emulator in place of the session's plain one, so ``hook_on`` builds hooks on it."""
    https_emulator.admin.reset(config=True)
    https_emulator.admin.configure(queued_seconds=0.05, processing_seconds=0.1)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return https_emulator


def test_sync_upload_job_and_download_over_https(
    hook_on: HookOn, https_emulator: EmulatorServer, wav_file: Path, tmp_path: Path
) -> None:
    assert https_emulator.api_url.startswith("https://")
    assert https_emulator.results_url.startswith("https://")
    assert https_emulator.results_url != https_emulator.storage_url
    hook = hook_on(conn_id="musicai_tls", ca_bundle=https_emulator.ca_path)
    url = hook.upload_file(wav_file)
    assert url.startswith(https_emulator.storage_url)
    job_id = hook.create_job("over tls", STEMS, {"inputUrl": url})
    job = hook.wait_for_job(job_id, poll_interval=0.05, timeout=60)
    assert job["status"] == "SUCCEEDED"
    assert all(str(value).startswith(https_emulator.results_url) for value in job["result"].values())
    written = hook.download_results(job, tmp_path / "out")
    assert set(written) == {"vocals", "accompaniments"}
    for path in written.values():
        with wave.open(path) as stem:
            assert stem.getnframes() > 0
    assert https_emulator.admin.counters()["credential_leaks"] == 0


def test_async_calls_over_https(hook_on: HookOn, https_emulator: EmulatorServer, wav_file: Path) -> None:
    hook = hook_on(conn_id="musicai_tls_async", ca_bundle=https_emulator.ca_path)
    job_id = hook.create_job("async over tls", STEMS, {"inputUrl": hook.upload_file(wav_file)})

    async def follow() -> tuple[dict[str, Any], list[str]]:
        application = await hook.aget_application()
        for _ in range(1200):  # a condition, not a timing: the job ends within a minute
            if await hook.aget_job_status(job_id) == "SUCCEEDED":
                break
            await asyncio.sleep(0.05)
        listed = [job["id"] async for job in hook.alist_jobs()]
        return application, listed

    application, listed = asyncio.run(follow())
    assert application["name"]
    assert job_id in listed
    assert asyncio.run(hook.aget_job(job_id))["status"] == "SUCCEEDED"


def test_without_ca_bundle_the_certificate_error_is_typed_and_not_retried(
    hook_on: HookOn, https_emulator: EmulatorServer
) -> None:
    hook = hook_on(conn_id="musicai_tls_untrusted")
    before = https_emulator.admin.counters()
    with pytest.raises(MusicAITransportError, match="TLS certificate verification failed") as sync_error:
        hook.get_upload_url()
    with pytest.raises(MusicAITransportError, match="TLS certificate verification failed") as async_error:
        asyncio.run(hook.aget_application())
    for error in (sync_error.value, async_error.value):
        assert "ca_bundle" in str(error)
        assert https_emulator.api_key not in str(error)
    assert (
        https_emulator.admin.counters()["requests_total"] == before["requests_total"]
    )  # no handshake passed
