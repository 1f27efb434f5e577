"""Declared workflows, realistic built-in outputs, value types and offline inputs (emulator fidelity)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from airflow_provider_musicai.testing import EmulatorError, EmulatorServer

pytestmark = pytest.mark.airflow_independent

SDK_TEST = {"slug": "sdk-test", "inputs": [{"name": "file", "type": "file", "required": True}],
            "outputs": [{"name": "file", "kind": "file"}]}  # fmt: skip
ANALYSIS = {
    "slug": "untitled-workflow-e78c2e",
    "name": "My analysis",
    "inputs": [
        {"name": "song", "type": "file", "required": True},
        {"name": "mode", "type": "string", "enum": ["fast", "best"]},
        {"name": "gain", "type": "number"},
    ],
    "outputs": [
        {"name": "Lead Vocals", "kind": "file"},
        {"name": "notes", "kind": "file", "extension": "mid"},
        {"name": "bpm", "kind": "value", "type": "number"},
        {"name": "key", "kind": "value", "type": "string", "value": "C Major"},
    ],
}


def create(api, workflow, params):
    return api.post("/job", json={"name": "n", "workflow": workflow, "params": params})


@pytest.mark.musicai_workflows(SDK_TEST)
def test_sdk_test_workflow_is_declarable_by_marker(api, wav):
    assert "sdk-test" in [w["slug"] for w in api.get("/workflow").json()["workflows"]]
    assert create(api, "sdk-test", {"inputUrl": "x"}).status_code == 422
    response = create(api, "sdk-test", {"file": api.upload(wav)})
    doc = api.wait(response.json()["id"])
    assert doc["status"] == "SUCCEEDED" and list(doc["result"]) == ["file"]
    assert requests.get(doc["result"]["file"], timeout=10).content[:4] == b"RIFF"


def test_declared_workflow_inputs_outputs_and_value_types(api, emu, wav):
    listed = emu.admin.declare_workflow(ANALYSIS)
    assert listed["slug"] == ANALYSIS["slug"] and listed["name"] == "My analysis"
    assert api.get("/workflow").json()["workflows"][0]["slug"] == ANALYSIS["slug"]  # newest first
    url = api.upload(wav)
    assert create(api, ANALYSIS["slug"], {"mode": "fast"}).status_code == 422  # song required
    assert create(api, ANALYSIS["slug"], {"song": url, "mode": "slow"}).status_code == 422
    assert create(api, ANALYSIS["slug"], {"song": url, "gain": "loud"}).status_code == 422
    doc = api.wait(create(api, ANALYSIS["slug"], {"song": url, "mode": "best", "gain": 1.5}).json()["id"])
    result = doc["result"]
    assert list(result) == ["Lead Vocals", "notes", "bpm", "key"]
    assert "/Lead-Vocals.wav?" in result["Lead Vocals"] and "/notes.mid?" in result["notes"]
    assert requests.get(result["notes"], timeout=10).content == wav  # non-WAV outputs copy the input
    assert isinstance(result["bpm"], float) and result["key"] == "C Major"
    emu.admin.configure(result_value_types="string")
    again = api.wait(create(api, ANALYSIS["slug"], {"song": url}).json()["id"])["result"]
    assert again["bpm"] == str(result["bpm"]).removesuffix(".0") and again["key"] == "C Major"
    emu.admin.remove_workflow(ANALYSIS["slug"])
    assert create(api, ANALYSIS["slug"], {"song": url}).status_code == 404


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ({"slug": "x", "inputs": [], "outputs": [{"name": "a"}]}, "type 'file'"),
        ({"slug": "x", "inputs": [{"name": "f", "type": "file"}], "outputs": []}, "non-empty list"),
        ({**SDK_TEST, "outputs": [{"name": "a", "kind": "value", "type": "date"}]}, "'string' or 'number'"),
        ({**SDK_TEST, "outputs": [{"name": "a"}, {"name": "a"}]}, "duplicate output"),
        ({**SDK_TEST, "colour": "red"}, "unknown field"),
        ({**SDK_TEST, "errors": ""}, "'errors' must be a non-empty string"),
    ],
)
def test_malformed_declarations_are_refused_naming_the_problem(emu, declaration, message):
    with pytest.raises(EmulatorError, match=message):
        emu.admin.declare_workflow(declaration)


@pytest.mark.musicai_workflows({**SDK_TEST, "slug": "broken", "errors": "module 'Stems' has no input"})
def test_a_workflow_saved_with_errors_is_listed_and_refuses_jobs_with_422(api, emu, wav):
    assert "broken" in [w["slug"] for w in api.get("/workflow").json()["workflows"]]
    refused = create(api, "broken", {"file": api.upload(wav)})
    assert refused.status_code == 422
    assert refused.json()["message"] == "The workflow contains errors: module 'Stems' has no input"
    assert emu.admin.jobs() == [] and emu.admin.counters()["jobs_created"] == 0


def test_declarations_last_until_a_config_reset(emu):
    emu.admin.declare_workflow(SDK_TEST)
    emu.admin.reset()
    assert "sdk-test" in [w["slug"] for w in emu.admin.workflows()]
    emu.admin.reset(config=True)
    assert "sdk-test" not in [w["slug"] for w in emu.admin.workflows()]


def test_isolate_drums_has_realistic_keys_and_bpm_can_be_a_string(api, emu, wav):
    url = api.upload(wav)
    doc = api.wait(api.create(url, "music-ai/isolate-drums"))
    assert list(doc["result"]) == ["Kick drum", "Snare drum", "Other"]
    for value in doc["result"].values():
        assert requests.get(value, timeout=10).content[:4] == b"RIFF"
    native = api.wait(api.create(url, "music-ai/beats-chords-key"))["result"]["bpm"]
    assert isinstance(native, float)
    emu.admin.configure(result_value_types="string")
    assert api.wait(api.create(url, "music-ai/beats-chords-key"))["result"]["bpm"] == f"{native:g}"


def test_offline_input_files_serve_documentation_urls(api, emu, wav, tmp_path):
    demo = tmp_path / "demo.wav"
    demo.write_bytes(wav)
    assert api.wait(api.create("https://music.ai/demo.ogg"))["error"]["code"] == "TIMEOUT"
    emu.admin.set_input_files({"https://music.ai/demo.ogg": demo})
    doc = api.wait(api.create("https://music.ai/demo.ogg"))
    assert doc["status"] == "SUCCEEDED"
    assert demo.exists()  # the user's file is never deleted
    with pytest.raises(EmulatorError, match="does not exist"):
        emu.admin.set_input_files({"https://music.ai/other.ogg": tmp_path / "missing.ogg"})


@pytest.mark.musicai_input_files({"https://music.ai/demo.ogg": __file__})
def test_input_files_marker(api, emu):
    doc = api.wait(api.create("https://music.ai/demo.ogg"))
    assert doc["error"]["code"] == "BAD_INPUT"  # found (not TIMEOUT), but this file is not audio


def test_startup_options_workflows_config_and_input_files(tmp_path, wav):
    demo = tmp_path / "demo.wav"
    demo.write_bytes(wav)
    with EmulatorServer(
        workflows=[SDK_TEST],
        config={"max_concurrent_jobs": 1, "result_value_types": "string"},
        input_files={"https://music.ai/demo.ogg": demo},
    ) as emu:
        config = emu.admin.config()
        assert config["max_concurrent_jobs"] == 1 and config["result_value_types"] == "string"
        emu.admin.reset(config=True)
        assert "sdk-test" in [w["slug"] for w in emu.admin.workflows()]
        session = requests.Session()
        session.headers["Authorization"] = emu.api_key
        body = {"name": "n", "workflow": "sdk-test", "params": {"file": "https://music.ai/demo.ogg"}}
        job_id = session.post(emu.api_url + "/job", json=body, timeout=10).json()["id"]
        for _ in range(1000):
            doc = session.get(f"{emu.api_url}/job/{job_id}", timeout=10).json()
            if doc["status"] in ("SUCCEEDED", "FAILED"):
                break
            emu.admin.advance_clock(1)
        assert doc["status"] == "SUCCEEDED", doc


def test_cli_refuses_a_bad_workflow_file(tmp_path):
    bad = tmp_path / "workflows.json"
    bad.write_text(json.dumps([{"slug": "x"}]))
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_musicai.testing.emulator", "--workflows", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "workflow 'x'" in result.stderr
