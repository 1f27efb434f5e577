"""Running the emulator: CLI, thread mode, fixed ports, admin config/reset, Airflow connection, imports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from airflow_provider_musicai.testing import EmulatorHandle, EmulatorServer

STEMS = "music-ai/stems-vocals-accompaniment"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_until_signalled(tmp_path, sig):
    port, storage_port = free_port(), free_port()
    ready = tmp_path / "ready.json"
    storage_dir = tmp_path / "blobs"
    cmd = [
        sys.executable, "-m", "airflow_provider_musicai.testing.emulator",
        "--port", str(port), "--storage-port", str(storage_port),
        "--api-key", "k1=App One", "--api-key", "k2",
        "--queued-seconds", "0", "--processing-seconds", "0",
        "--storage-dir", str(storage_dir), "--ready-file", str(ready),
    ]  # fmt: skip
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert f"API http://127.0.0.1:{port}/v1" in line
        assert f"storage http://127.0.0.1:{storage_port}" in line and "k1 (App One)" in line and "k2" in line
        info = json.loads(ready.read_text())
        assert info["api_url"] == f"http://127.0.0.1:{port}/v1" and info["api_keys"]["k2"] == "Application k2"
        api = f"http://127.0.0.1:{port}/v1"
        assert (
            requests.get(api + "/application", headers={"Authorization": "k1"}, timeout=10).json()["name"]
            == "App One"
        )
        assert (
            requests.get(
                api + "/application", headers={"Authorization": "test-api-key"}, timeout=10
            ).status_code
            == 401
        )
        config = requests.get(f"http://127.0.0.1:{port}/__emulator__/config", timeout=10).json()
        assert config["queued_seconds"] == 0 and config["processing_seconds"] == 0
        urls = requests.get(api + "/upload", headers={"Authorization": "k1"}, timeout=10).json()
        requests.put(urls["uploadUrl"], data=b"abc", timeout=10)
        assert len(list((storage_dir / "objects").iterdir())) == 1
        process.send_signal(sig)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_reports_a_busy_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cmd = [sys.executable, "-m", "airflow_provider_musicai.testing.emulator", "--port", str(port)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "cannot listen" in result.stderr


def test_thread_mode_with_fixed_ports_and_drop_fault():
    port = free_port()
    with EmulatorServer(
        mode="thread", port=port, api_keys={"k": "Solo"}, queued_seconds=0, processing_seconds=0
    ) as emu:
        assert emu.api_url == f"http://127.0.0.1:{port}/v1" and emu.api_key == "k" and emu.pid == os.getpid()
        assert (
            requests.get(emu.api_url + "/application", headers=emu.headers(), timeout=10).json()["name"]
            == "Solo"
        )
        emu.admin.script_faults({"match": "GET /v1/application", "fault": "drop"})
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(emu.api_url + "/application", headers=emu.headers(), timeout=10)
        with pytest.raises(Exception, match="single API key"):
            _ = emu.other_api_key
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/v1/application", timeout=2)


def test_subprocess_is_a_separate_process_and_stops(emu):
    assert emu.pid != os.getpid()
    server = EmulatorServer()
    with server:
        pid = server.pid
        assert server.admin.health()
    deadline = time.monotonic() + 60  # generous: the machine may be busy
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the emulator process is still alive")
    assert not server.running


def test_handle_connect_to_a_running_emulator(emu):
    handle = EmulatorHandle.connect(emu.base_url)
    assert handle.api_url == emu.api_url and handle.storage_url == emu.storage_url
    assert handle.api_keys == {"test-api-key": "Default Application", "other-api-key": "Other Application"}


def test_config_and_reset(emu, api, wav):
    defaults = emu.admin.config()
    assert defaults["list_shape"] == "array"
    with pytest.raises(Exception, match="400"):
        emu.admin.configure(list_shape="tuple")
    with pytest.raises(Exception, match="unknown config key"):
        emu.admin.configure(nope=1)
    with pytest.raises(Exception, match="400"):
        emu.admin.configure(queued_seconds=-1)
    emu.admin.configure(list_shape="object")
    url = api.upload(wav)
    api.create(url)
    emu.admin.reset(blobs=False)
    assert emu.admin.jobs() == [] and emu.admin.counters()["requests_total"] == 0
    assert requests.get(url, timeout=10).status_code == 200
    assert emu.admin.config()["list_shape"] == "object"
    emu.admin.reset(config=True)
    assert emu.admin.config() == {**defaults, "queued_seconds": 0.5, "processing_seconds": 1.0}
    assert requests.get(url, timeout=10).status_code == 404


def test_connection_helpers(musicai_connection_env):
    emu = musicai_connection_env
    conn = json.loads(os.environ["AIRFLOW_CONN_MUSICAI_DEFAULT"])
    assert conn == {"conn_type": "musicai", "host": emu.api_url, "password": "test-api-key"}
    assert json.loads(emu.connection_json(emu.other_api_key))["password"] == "other-api-key"
    uri = emu.connection_uri()
    assert uri.startswith("musicai://:test-api-key@http%3A%2F%2F127.0.0.1%3A")


def test_connection_uri_parses_in_airflow(emu, tmp_path):
    pytest.importorskip("airflow")
    code = (
        "import sys; from airflow.models.connection import Connection; c = Connection(uri=sys.argv[1]); "
        "print('CONN', c.conn_type, c.host, c.password)"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code, emu.connection_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("CONN "))
    assert line.split() == ["CONN", "musicai", emu.api_url, emu.api_key]


def test_imports_stay_light():
    code = (
        "import sys; import airflow_provider_musicai.testing.pytest_plugin; "
        "from airflow_provider_musicai.testing import EmulatorServer; "
        "heavy = [m for m in ('fastapi', 'uvicorn', 'airflow', 'pydantic') if m in sys.modules]; "
        "import airflow_provider_musicai.testing.emulator.server; "
        "print(heavy, 'airflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[] False", result.stderr


def test_server_owns_its_handle_by_composition():
    from airflow_provider_musicai.testing import EmulatorError

    server = EmulatorServer(mode="thread")
    assert not isinstance(server, EmulatorHandle)
    with pytest.raises(EmulatorError, match="not started"):
        _ = server.api_url
    with server:
        assert isinstance(server.handle, EmulatorHandle)
        assert server.api_url == server.handle.api_url and server.admin.health()
