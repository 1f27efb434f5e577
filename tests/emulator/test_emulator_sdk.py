"""Faithfulness: the official Music AI SDK runs its WHOLE flow (downloads included) against the emulator.

The SDK downloads only ``https://`` result URLs, so this runs over the emulator's HTTPS listeners, with
results on their own origin, trusting the emulator's CA through ``REQUESTS_CA_BUNDLE``.
"""

from __future__ import annotations

import io
import json
import wave
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_musicai.testing import EmulatorServer

pytestmark = pytest.mark.airflow_independent

musicai_sdk = pytest.importorskip("musicai_sdk")

STEMS = "music-ai/stems-vocals-accompaniment"
BEATS = "music-ai/beats-chords-key"
DRUMS = "music-ai/isolate-drums"
SDK_TEST = {
    "slug": "sdk-test",
    "inputs": [{"name": "file", "type": "file", "required": True}],
    "outputs": [{"name": "file", "kind": "file"}],
}


@pytest.fixture(scope="module")
def https_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(https=True, workflows=[SDK_TEST]) as server:
        yield server


@pytest.fixture
def emu_tls(https_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    https_emulator.admin.reset(config=True)
    https_emulator.admin.configure(queued_seconds=0.05, processing_seconds=0.1)
    assert https_emulator.ca_path is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", https_emulator.ca_path)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return https_emulator


def sdk_client(emu: EmulatorServer) -> Any:
    client = musicai_sdk.MusicAiClient(api_key=emu.api_key, job_monitor_interval=0.05, timeout=10)
    client.base_url = emu.api_url
    return client


def jobs_of(listed: Any, list_shape: str) -> list[dict[str, Any]]:
    return list(listed if list_shape == "array" else listed["jobs"])


@pytest.mark.parametrize("list_shape", ["array", "object"])
def test_official_sdk_whole_flow_over_https(emu_tls, tmp_path, wav, list_shape):
    emu = emu_tls
    emu.admin.configure(list_shape=list_shape)
    assert emu.api_url.startswith("https://") and emu.results_url != emu.storage_url
    client = sdk_client(emu)
    assert client.get_application_info()["name"] == "Default Application"
    song = tmp_path / "song.wav"
    song.write_bytes(wav)
    input_url = client.upload_file(str(song))
    assert input_url.startswith(emu.storage_url)
    created = client.add_job("sdk job", STEMS, {"inputUrl": input_url}, metadata={"source": "sdk", "n": 1})
    job = client.wait_for_job_completion(created["id"])
    assert job["status"] == "SUCCEEDED" and set(job["result"]) == {"vocals", "accompaniments"}
    assert all(url.startswith(emu.results_url) for url in job["result"].values())
    assert client.get_job(created["id"])["metadata"] == {"source": "sdk", "n": 1}
    out = tmp_path / "out"
    downloaded = client.download_job_results(job, str(out))
    assert set(downloaded) == {"vocals", "accompaniments"}
    with wave.open(io.BytesIO((out / "vocals.wav").read_bytes())) as w:
        assert w.getnframes() > 0
    summary = json.loads((out / "workflow.result.json").read_text())
    assert summary == {"vocals": "./vocals.wav", "accompaniments": "./accompaniments.wav"}
    other = client.add_job("beats", BEATS, {"inputUrl": input_url})
    assert [j["id"] for j in jobs_of(client.list_jobs(), list_shape)] == [other["id"], created["id"]]
    filtered = client.list_jobs(filters={"workflow": [BEATS]})
    assert [j["id"] for j in jobs_of(filtered, list_shape)] == [other["id"]]
    slugs = {w["slug"] for w in client.list_workflows()["workflows"]}
    assert {STEMS, BEATS, DRUMS, "sdk-test"} <= slugs
    assert client.get_job_status(created["id"])["status"] == "SUCCEEDED"
    assert client.delete_job(created["id"]) == {"id": created["id"]}
    with pytest.raises(Exception, match="404"):
        client.get_job(created["id"])
    assert emu.admin.counters()["credential_leaks"] == 0


def test_official_sdk_realistic_keys_string_values_and_its_own_test_workflow(emu_tls, tmp_path, wav):
    emu = emu_tls
    emu.admin.configure(result_value_types="string")
    client = sdk_client(emu)
    song = tmp_path / "song.wav"
    song.write_bytes(wav)
    input_url = client.upload_file(str(song))
    drums = client.wait_for_job_completion(client.add_job("drums", DRUMS, {"inputUrl": input_url})["id"])
    files = client.download_job_results(drums, str(tmp_path / "drums"))
    assert set(files) == {"Kick drum", "Snare drum", "Other"}
    assert (tmp_path / "drums" / "Kick drum.wav").read_bytes()[:4] == b"RIFF"
    beats = client.wait_for_job_completion(client.add_job("b", BEATS, {"inputUrl": input_url})["id"])
    assert isinstance(beats["result"]["bpm"], str)
    client.download_job_results(beats, str(tmp_path / "beats"))
    summary = json.loads((tmp_path / "beats" / "workflow.result.json").read_text())
    assert summary["bpm"] == beats["result"]["bpm"] and summary["chords"] == "./chords.json"
    # The SDK's own real-service test: workflow "sdk-test", input "file", output "file".
    job = client.wait_for_job_completion(client.add_job("t", "sdk-test", {"file": input_url})["id"])
    assert job["workflow"] == "sdk-test"
    assert set(client.download_job_results(job, str(tmp_path / "t"))) == {"file"}


def test_official_sdk_custom_storage(emu_tls, tmp_path, wav):
    emu = emu_tls
    client = sdk_client(emu)
    song = tmp_path / "song.wav"
    song.write_bytes(wav)
    input_url = client.upload_file(str(song))
    target = requests.get(emu.api_url + "/upload", headers=emu.headers(), timeout=10).json()
    created = client.add_job(
        "custom", STEMS, {"inputUrl": input_url}, copy_results_to={"vocals": target["uploadUrl"]}
    )
    job = client.wait_for_job_completion(created["id"])
    assert job["result"]["vocals"] == "[custom storage]"
    assert set(client.download_job_results(job, str(tmp_path / "o"))) == {"accompaniments"}
    assert requests.get(target["downloadUrl"], timeout=10).content[:4] == b"RIFF"


def test_https_listeners_with_plain_requests_and_httpx2(emu_tls, wav):
    emu = emu_tls
    httpx2 = pytest.importorskip("httpx2")
    untrusting = requests.Session()
    untrusting.trust_env = False  # ignore REQUESTS_CA_BUNDLE: the system CAs do not know the emulator's
    with pytest.raises(requests.exceptions.SSLError):
        untrusting.get(emu.api_url + "/application", headers=emu.headers(), timeout=10)
    assert (
        requests.get(
            emu.api_url + "/application", headers=emu.headers(), timeout=10, verify=emu.ca_path
        ).json()["name"]
        == "Default Application"
    )
    with httpx2.Client(verify=emu.ca_path, trust_env=False) as client:
        urls = client.get(emu.api_url + "/upload", headers=emu.headers()).json()
        assert client.put(urls["uploadUrl"], content=wav).status_code == 200
        assert client.get(urls["downloadUrl"]).content == wav


def test_cli_https_prints_the_ca_path_and_a_separate_results_origin():
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_musicai.testing.emulator", "--https"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        ca_path = line.split("  CA ")[1].split()[0]
        assert line.count("https://") == 3 and " results https://" in line
        api_url = line.split("API ")[1].split()[0]
        answer = requests.get(api_url + "/application", headers={"Authorization": "test-api-key"},
                              timeout=10, verify=ca_path)  # fmt: skip
        assert answer.status_code == 200
    finally:
        process.terminate()
        process.wait(20)
