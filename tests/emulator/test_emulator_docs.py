"""The emulator's documentation matches the emulator: its CLI options, workflow files and HTTPS commands.

docs/emulator.rst documents every option of ``python -m airflow_provider_musicai.testing.emulator`` and the
workflow file format (with the example files under docs/examples/), and docs/howto/third_party_client.rst
runs a documented command line; these tests keep the pages true.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from airflow_provider_musicai.testing.emulator.__main__ import _workflows, main, parse_args
from airflow_provider_musicai.testing.emulator.catalog import parse_declaration

pytestmark = pytest.mark.airflow_independent

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLES = DOCS / "examples"
DONE = ("SUCCEEDED", "FAILED")


def documented_options() -> set[str]:
    return set(re.findall(r"^\.\. option:: (--[a-z-]+)", (DOCS / "emulator.rst").read_text(), re.M))


def test_every_cli_option_is_documented_and_every_documented_option_exists(capsys):
    with pytest.raises(SystemExit) as exited:
        parse_args(["--help"])
    assert exited.value.code == 0
    in_help = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", capsys.readouterr().out)) - {"--help"}
    assert len(in_help) == 20
    assert documented_options() == in_help


def test_documented_workflow_files_load_with_the_emulators_loader():
    files = sorted(EXAMPLES.glob("*.json"))
    assert {f.name for f in files} == {"emulator-workflows.json", "sdk-test-workflow.json"}
    slugs = {}
    for path in files:
        for raw in _workflows(path):
            workflow = parse_declaration(raw, 0.0)
            slugs[workflow.slug] = workflow
    assert set(slugs) == {"my-drums-and-key", "half-built-workflow", "sdk-test"}
    assert slugs["my-drums-and-key"].outputs == ("Kick drum", "original", "bpm", "key")
    assert [p.type for p in slugs["my-drums-and-key"].params] == ["file", "string", "number", "boolean"]
    assert slugs["half-built-workflow"].errors == "The module 'Stems' has no input."
    assert slugs["sdk-test"].outputs == ("file",) and slugs["sdk-test"].params[0].name == "file"


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the emulator wrote no ready file"
        time.sleep(0.05)
    return dict(json.loads(path.read_text()))


def test_documented_https_command_with_workflows_input_file_and_ready_file(tmp_path, wav):
    """The command of the docs: HTTPS, a workflows file, an input file, a ready file; the CA goes at exit."""
    (tmp_path / "demo.ogg").write_bytes(wav)
    ready = tmp_path / "emulator.json"
    cmd = [
        sys.executable, "-m", "airflow_provider_musicai.testing.emulator", "--https",
        "--workflows", str(EXAMPLES / "emulator-workflows.json"),
        "--input-file", "https://music.ai/demo.ogg=demo.ogg",
        "--ready-file", str(ready), "--queued-seconds", "0", "--processing-seconds", "0",
    ]  # fmt: skip
    process = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = wait_for(ready, process)
        assert set(info) == {
            "base_url", "api_url", "storage_url", "results_url", "ca_path", "admin_url", "api_keys",
            "storage_dir", "pid",
        }  # fmt: skip
        assert info["api_url"] == info["base_url"] + "/v1" and info["base_url"].startswith("https://")
        assert info["results_url"] != info["storage_url"]
        ca = Path(info["ca_path"])
        assert ca == Path(info["storage_dir"]) / "tls" / "ca.pem" and ca.is_file()
        session = requests.Session()
        session.trust_env = False
        session.verify = str(ca)
        session.headers["Authorization"] = "test-api-key"
        # The bare origin plus the legacy /api prefix, as the official SDK's test suite builds it.
        listed = session.get(info["base_url"] + "/api/workflow", timeout=10).json()["workflows"]
        assert {"my-drums-and-key", "half-built-workflow"} <= {w["slug"] for w in listed}
        api = info["api_url"]

        def create(workflow: str) -> requests.Response:
            body = {"name": "doc", "workflow": workflow, "params": {"inputUrl": "https://music.ai/demo.ogg"}}
            return session.post(api + "/job", json=body, timeout=10)

        refused = create("half-built-workflow")
        assert refused.status_code == 422 and "The module 'Stems' has no input." in refused.json()["message"]
        job_id = create("my-drums-and-key").json()["id"]
        deadline = time.monotonic() + 60
        while session.get(f"{api}/job/{job_id}/status", timeout=10).json()["status"] not in DONE:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        job = session.get(f"{api}/job/{job_id}", timeout=10).json()
        assert job["status"] == "SUCCEEDED", job["error"]
        assert (
            set(job["result"]) == {"Kick drum", "original", "bpm", "key"}
            and job["result"]["key"] == "C major"
        )
        # A signed URL, fetched without the API key (the storage refuses an Authorization header).
        original = requests.get(job["result"]["original"], verify=str(ca), timeout=10)
        assert original.content == wav and job["result"]["original"].startswith(info["results_url"])
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert not Path(info["storage_dir"]).exists()  # the temporary folder, CA included, is gone
        assert ready.exists()  # the ready file is left behind
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the workflows file"),
        ("{", "not valid JSON"),
        ('{"slug": "x"}', 'expected a JSON list of workflow declarations or {"workflows": [...]}'),
        (
            '[{"slug": "x", "inputs": [], "outputs": [{"name": "o"}]}]',
            "at least one input must have type 'file'",
        ),
    ],
)
def test_a_bad_workflows_file_exits_2_naming_the_problem(tmp_path, capsys, monkeypatch, content, message):
    monkeypatch.setattr(logging, "basicConfig", lambda **kwargs: None)
    path = tmp_path / "workflows.json"
    if content is not None:
        path.write_text(content)
    assert main(["--workflows", str(path)]) == 2
    assert message in capsys.readouterr().err
