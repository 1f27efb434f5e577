"""Faithfulness: the official Music AI SDK runs its whole flow against the emulator."""

from __future__ import annotations

import io
import wave

import pytest

musicai_sdk = pytest.importorskip("musicai_sdk")

STEMS = "music-ai/stems-vocals-accompaniment"
BEATS = "music-ai/beats-chords-key"


@pytest.mark.parametrize("list_shape", ["array", "object"])
def test_official_sdk_flow(emu, tmp_path, wav, list_shape):
    emu.admin.configure(list_shape=list_shape)
    client = musicai_sdk.MusicAiClient(api_key=emu.api_key, job_monitor_interval=0.05, timeout=10)
    client.base_url = emu.api_url
    assert client.get_application_info()["name"] == "Default Application"
    song = tmp_path / "song.wav"
    song.write_bytes(wav)
    input_url = client.upload_file(str(song))
    assert input_url.startswith(emu.storage_url)
    created = client.add_job("sdk job", STEMS, {"inputUrl": input_url}, metadata={"source": "sdk", "n": 1})
    job = client.wait_for_job_completion(created["id"])
    assert job["status"] == "SUCCEEDED" and set(job["result"]) == {"vocals", "accompaniments"}
    again = client.get_job(created["id"])
    assert again["metadata"] == {"source": "sdk", "n": 1}
    other = client.add_job("beats", BEATS, {"inputUrl": input_url})
    listed = client.list_jobs()
    jobs = listed if list_shape == "array" else listed["jobs"]
    assert [j["id"] for j in jobs] == [other["id"], created["id"]]
    filtered = client.list_jobs(filters={"workflow": [BEATS]})
    assert [j["id"] for j in (filtered if list_shape == "array" else filtered["jobs"])] == [other["id"]]
    slugs = {w["slug"] for w in client.list_workflows()["workflows"]}
    assert {STEMS, BEATS} <= slugs
    assert client.get_job_status(created["id"])["status"] == "SUCCEEDED"
    vocals = tmp_path / "out" / "vocals.wav"
    client.download_file(job["result"]["vocals"], str(vocals))
    with wave.open(io.BytesIO(vocals.read_bytes())) as w:
        assert w.getnframes() > 0
    assert client.delete_job(created["id"]) == {"id": created["id"]}
    with pytest.raises(Exception, match="404"):
        client.get_job(created["id"])
    counters = emu.admin.counters()
    assert counters["credential_leaks"] == 0
