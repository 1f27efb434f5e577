"""The shared poller's summary lines: what each triggerer asks of Music AI, read from its log."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from airflow_provider_musicai.common import DEFAULT_POLLER_LOG_INTERVAL
from airflow_provider_musicai.get_provider_info import get_provider_info
from airflow_provider_musicai.hooks.musicai import MusicAIHook
from airflow_provider_musicai.triggers._poller import SharedJobPoller, configured_log_interval
from tests.helpers.hooks import arun
from tests.helpers.reliability import POLLER_SUMMARY, poller_summaries

STEMS = "music-ai/stems-vocals-accompaniment"
POLLER_LOGGER = "airflow_provider_musicai.triggers._poller"


def summaries(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        line
        for record in caplog.records
        if record.name == POLLER_LOGGER and POLLER_SUMMARY.fullmatch(record.getMessage())
        for line in poller_summaries(record.getMessage())
    ]


def test_each_summary_line_counts_the_cycles_and_requests_since_the_last(
    hook: MusicAIHook, musicai_emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=POLLER_LOGGER)
    musicai_emulator.admin.freeze_clock()  # the jobs stay QUEUED until the test completes them
    ids = [hook.create_job(f"job {n}", STEMS, {"inputUrl": "https://music.ai/demo.ogg"}) for n in range(3)]
    poller = SharedJobPoller(hook, poll_interval=0.05, log_interval=0.3, name="musicai_default")

    async def scenario() -> list[dict[str, Any]]:
        waits = [asyncio.ensure_future(poller.wait(job_id, STEMS)) for job_id in ids]
        while len(summaries(caplog)) < 2:
            await asyncio.sleep(0.05)
        for job_id in ids:
            await asyncio.to_thread(musicai_emulator.admin.complete_job, job_id)
        return list(await asyncio.gather(*waits))

    jobs = arun(scenario())
    assert {job["status"] for job in jobs} <= {"SUCCEEDED", "FAILED"}  # final, whichever
    lines = summaries(caplog)
    assert len(lines) >= 2
    for line in lines:
        assert line["name"] == "musicai_default"
        assert line["cycles"] >= 1
        assert line["requests"] == line["lists"] + line["reads"]
        assert line["requests"] >= line["busiest"] >= 1
    # While every job was QUEUED, a cycle was a listing and nothing else.
    assert lines[0]["waiting"] == 3 and lines[0]["reads"] == 0
    # The lines add up to no more than the poller did: each request is counted in one line only.
    assert sum(int(line["cycles"]) for line in lines) <= poller.stats.cycles
    assert sum(int(line["lists"]) for line in lines) <= poller.stats.list_requests
    assert sum(int(line["reads"]) for line in lines) <= poller.stats.job_requests


def test_no_summary_lines_when_turned_off(
    hook: MusicAIHook, musicai_emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=POLLER_LOGGER)
    musicai_emulator.admin.freeze_clock()
    job_id = hook.create_job("job", STEMS, {"inputUrl": "https://music.ai/demo.ogg"})
    poller = SharedJobPoller(hook, poll_interval=0.02, log_interval=0)

    async def scenario() -> dict[str, Any]:
        wait = asyncio.ensure_future(poller.wait(job_id, STEMS))
        while poller.stats.cycles < 20:  # many times the interval a line would need, had it one
            await asyncio.sleep(0.02)
        await asyncio.to_thread(musicai_emulator.admin.complete_job, job_id)
        return await wait

    assert arun(scenario())["status"] in ("SUCCEEDED", "FAILED")
    assert summaries(caplog) == []


def test_the_interval_comes_from_airflow_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__MUSICAI__POLLER_LOG_INTERVAL", raising=False)
    assert configured_log_interval() == DEFAULT_POLLER_LOG_INTERVAL
    monkeypatch.setenv("AIRFLOW__MUSICAI__POLLER_LOG_INTERVAL", "15")
    assert configured_log_interval() == 15.0
    # The option is declared in the provider's configuration, with the same default.
    option = get_provider_info()["config"]["musicai"]["options"]["poller_log_interval"]
    assert float(option["default"]) == DEFAULT_POLLER_LOG_INTERVAL
