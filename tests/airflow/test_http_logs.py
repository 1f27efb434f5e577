"""httpx2's per-request INFO line ("HTTP Request: GET ... 200 OK") is logged at DEBUG for the
provider's own requests only: task logs stay readable, a user's own httpx2 client is unaffected."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.airflow import load_example, run_dag, task_states

pytestmark = pytest.mark.usefixtures("airflow_db")

REQUEST_LINE = "HTTP Request:"


def test_the_example_chain_logs_no_request_line_of_ours(
    musicai: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    dag_run = run_dag(load_example("example_musicai_chain"), {"output_dir": str(tmp_path)})
    logs = "".join(capfd.readouterr()) + caplog.text
    assert set(task_states(dag_run).values()) == {"success"}
    # The tasks' and the inline triggers' lines were captured, polls (httpx2) included.
    assert "Created Music AI job" in logs and "SUCCEEDED" in logs
    assert REQUEST_LINE not in logs


def test_a_users_own_httpx2_client_still_logs_its_request_line(
    hook: Any, musicai: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import httpx2

    async def both() -> None:
        async with httpx2.AsyncClient() as client:
            # The hook's request and the user's run concurrently on the same loop.
            await asyncio.gather(hook.aget_application(), client.get(musicai.api_url + "/application"))

    caplog.set_level(logging.DEBUG, logger="httpx2")
    asyncio.run(both())
    # The provider's call (with the key: 200) is demoted to DEBUG; the user's (no key: 401) stays INFO.
    assert request_lines(caplog) == [("DEBUG", "200"), ("INFO", "401")]

    caplog.clear()
    caplog.set_level(logging.INFO, logger="httpx2")
    asyncio.run(both())
    assert request_lines(caplog) == [("INFO", "401")]


def request_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """(level, HTTP status) of each captured httpx2 request line, sorted."""
    return sorted(
        (record.levelname, str(record.args[3]))  # type: ignore[index]
        for record in caplog.records
        if record.getMessage().startswith(REQUEST_LINE)
    )
