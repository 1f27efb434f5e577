"""Opt-in: the "Music AI job" button in the real Airflow 3 UI (``airflow api-server``, SimpleAuthManager
with every user admin), driven by playwright in Debian's headless Chromium.

Run with (playwright from a venv of its own, never ``playwright install``)::

    apt-get install -y chromium && python3 -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    MUSICAI_UI_TESTS=1 PYTHONPATH=$PWD:/tmp/pw/lib/python3.11/site-packages \\
        .venv/bin/python -m pytest -p no:cacheprovider -m ui tests/airflow/test_ui_link.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from airflow_provider_musicai.testing.emulator.control import stop_process
from tests.helpers.airflow import TEST_DAGS, load_dag_file, run_dag, task_states, xcom_value

CHROMIUM = Path("/usr/bin/chromium")
TEMPLATE = "https://jobs.example.com/app/jobs/{job_id}"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.ui,
    pytest.mark.skipif(os.environ.get("MUSICAI_UI_TESTS") != "1", reason="set MUSICAI_UI_TESTS=1"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def api_server(airflow_db: str) -> Any:
    """``airflow api-server`` on the tests' AIRFLOW_HOME, every user an admin; yields its base URL."""
    pytest.importorskip("airflow.api_fastapi", reason="the UI under test is Airflow 3's")
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
    }
    log = Path(os.environ["AIRFLOW_HOME"]) / "api-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--port", str(port), "--host", "127.0.0.1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"{base}/api/v2/monitor/health", timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("airflow api-server did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.2)
        yield base
    finally:
        stop_process(process, grace=30)


def test_the_button_appears_on_the_finished_task_and_opens_the_job(
    musicai: Any, monkeypatch: pytest.MonkeyPatch, input_url: Any, api_server: str
) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (own venv)")
    connection = {**musicai.connection_dict(), "extra": json.dumps({"job_url_template": TEMPLATE})}
    monkeypatch.setenv("AIRFLOW_CONN_MUSICAI_DEFAULT", json.dumps(connection))
    dag = load_dag_file(TEST_DAGS / "musicai_link_dags.py").links
    dag_run = run_dag(dag, {"urls": [input_url()]})
    assert task_states(dag_run)["worker"] == "success"
    expected = TEMPLATE.format(job_id=xcom_value(dag_run, "worker", "job_id"))

    page_url = f"{api_server}/dags/{dag.dag_id}/runs/{quote(dag_run.run_id, safe='')}/tasks/worker"
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(page_url + "/details")  # the extra links are on the task instance's Details tab
            button = page.get_by_role("link", name="Music AI job")
            try:
                button.wait_for(timeout=60_000)
            except Exception:
                page.screenshot(path=str(Path(os.environ["AIRFLOW_HOME"]) / "ui-failure.png"), full_page=True)
                raise
            assert button.get_attribute("href") == expected
        finally:
            browser.close()
