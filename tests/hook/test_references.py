"""Signed URLs stay out of XCom: result references and sealed upload URLs, resolved on use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_musicai.exceptions import MusicAIConfigurationError
from airflow_provider_musicai.hooks.musicai import MusicAIHook
from airflow_provider_musicai.references import (
    parse_result_reference,
    public_job_document,
    result_reference,
    seal,
    unseal,
)
from tests.helpers.hooks import HookOn

STEMS = "music-ai/stems-vocals-accompaniment"
LYRICS = "music-ai/transcribe-vocals"


def signatures(*urls: str) -> list[str]:
    return [url.split("?", 1)[1] for url in urls if "?" in url]


def test_chain_through_references_and_sealed_upload(
    hook: MusicAIHook, wav_file: Path, tmp_path: Path, musicai_emulator: Any
) -> None:
    upload_url = hook.upload_file(wav_file)
    sealed = hook.seal(upload_url)
    first_id = hook.create_job("stems", STEMS, {"inputUrl": sealed})
    first = hook.wait_for_job(first_id, poll_interval=0.2, timeout=60)
    public = public_job_document(first)
    stored = json.dumps([sealed, public])  # what XCom would hold
    for secret in signatures(upload_url, *first["result"].values(), first["workflowParams"]["inputUrl"]):
        assert secret not in stored
    assert public["result"]["vocals"] == result_reference(first_id, "vocals")

    second_id = hook.create_job("lyrics", LYRICS, {"inputUrl": public["result"]["vocals"], "language": "en"})
    second = hook.wait_for_job(second_id, poll_interval=0.2, timeout=60)
    assert second["workflowParams"]["inputUrl"].split("?")[0] == first["result"]["vocals"].split("?")[0]
    written = hook.download_results(public, tmp_path)  # an XCom copy is enough to download
    assert set(written) == {"vocals", "accompaniments"}


def test_unknown_result_key_names_the_job_and_its_results(hook: MusicAIHook, wav_file: Path) -> None:
    job_id = hook.create_job("stems", STEMS, {"inputUrl": hook.upload_file(wav_file)})
    hook.wait_for_job(job_id, poll_interval=0.2, timeout=60)
    with pytest.raises(MusicAIConfigurationError, match=r"no URL result 'drums'.*vocals"):
        hook.create_job("x", LYRICS, {"inputUrl": result_reference(job_id, "drums")})


def test_sealed_urls_open_only_with_the_same_key(hook_on: HookOn, musicai_emulator: Any) -> None:
    token = seal("http://127.0.0.1:1/storage/x?X-Signature=abc", musicai_emulator.api_key)
    assert "abc" not in token
    assert unseal(token, musicai_emulator.api_key).endswith("X-Signature=abc")
    other = hook_on(conn_id="musicai_other", key=musicai_emulator.other_api_key)
    with pytest.raises(MusicAIConfigurationError, match="another connection's API key"):
        other.create_job("x", STEMS, {"inputUrl": token})
    assert musicai_emulator.admin.counters()["jobs_created"] == 0


@pytest.mark.parametrize("bad", ["musicai-result://", "musicai-result://job-only", "musicai-result:///key"])
def test_malformed_references(bad: str) -> None:
    with pytest.raises(MusicAIConfigurationError, match="Malformed Music AI result reference"):
        parse_result_reference(bad)
