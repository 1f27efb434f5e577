"""Opt-in: a Music AI connection made in the real Airflow 3 UI's form (``airflow api-server``,
SimpleAuthManager, headless Chromium through playwright) holds only what the user typed: the fields
start empty with their default in the description, and the saved extras carry no default.

Run as ``tests/airflow/test_ui_link.py`` says (``MUSICAI_UI_TESTS=1``, Debian's chromium, playwright
from a venv of its own)::

    MUSICAI_UI_TESTS=1 PYTHONPATH=$PWD:/tmp/pw/lib/python3.11/site-packages \\
        .venv/bin/python -m pytest -p no:cacheprovider -m ui tests/airflow/test_ui_connection_form.py
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.test_ui_link import CHROMIUM, CHROMIUM_ARGS, api_server  # noqa: F401 (a fixture)

pytestmark = [
    pytest.mark.ui,
    pytest.mark.skipif(os.environ.get("MUSICAI_UI_TESTS") != "1", reason="set MUSICAI_UI_TESTS=1"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)"),
]

CONN_ID = "musicai_from_the_form"


@pytest.fixture
def fernet_key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The api-server's Fernet key (set before it starts), to read the extras it encrypted."""
    from cryptography.fernet import Fernet

    key = Fernet.generate_key()
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", key.decode())
    return key


def saved_extra(key: bytes) -> dict[str, Any] | None:
    """The extras of the connection the form saved, read from Airflow's database; None until it exists."""
    from cryptography.fernet import Fernet

    with sqlite3.connect(Path(os.environ["AIRFLOW_HOME"]) / "airflow.db", timeout=30) as db:
        rows = db.execute(
            "SELECT extra, is_extra_encrypted FROM connection WHERE conn_id = ?", (CONN_ID,)
        ).fetchall()
    if not rows:
        return None
    ((extra, encrypted),) = rows
    text = Fernet(key).decrypt(extra.encode()).decode() if encrypted else extra
    return dict(json.loads(text or "{}"))


def test_a_connection_saved_in_the_form_holds_only_what_the_user_typed(
    fernet_key: bytes,
    api_server: str,  # noqa: F811 (the fixture imported above)
) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (own venv)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        try:
            page.goto(f"{api_server}/connections")
            page.get_by_role("button", name="Add Connection").click()
            page.locator("input[name=connection_id]").fill(CONN_ID)
            connection_type = page.get_by_role("combobox").first  # a react-select: type, then pick
            connection_type.fill("Music AI")
            page.get_by_role("option", name="Music AI", exact=True).click()
            page.get_by_text("Extra Fields", exact=True).click()
            timeout_box = page.get_by_role("spinbutton", name="Read timeout (seconds)")
            timeout_box.wait_for(timeout=60_000)
            assert timeout_box.input_value() == ""  # nothing prefilled
            assert page.get_by_text("How long to wait for each API answer. Default: 60.").count() >= 1
            timeout_box.fill("90")
            page.get_by_role("button", name="Save").click()
            deadline = time.monotonic() + 60
            while (extra := saved_extra(fernet_key)) is None and time.monotonic() < deadline:
                page.wait_for_timeout(200)
        except Exception:
            page.screenshot(path=os.environ.get("MUSICAI_UI_SCREENSHOT", "ui-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    assert extra is not None, "the form saved no connection"
    assert {name: value for name, value in extra.items() if value is not None} == {
        "timeout": 90,
        "allow_plain_http": False,
        "verify": True,
    }
