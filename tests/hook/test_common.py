"""The shared module: one default connection id, one status log, one timestamp format; and the
checks that replaced ``assert`` (which ``python -O`` removes)."""

from __future__ import annotations

import inspect
import logging
import re

import pytest

from airflow_provider_musicai.common import DEFAULT_CONN_ID, StatusLog, utc_stamp
from airflow_provider_musicai.exceptions import MusicAIError


def test_every_layer_defaults_to_the_one_connection_id() -> None:
    from airflow_provider_musicai.hooks.musicai import MusicAIHook
    from airflow_provider_musicai.operators.musicai import _MusicAIOperator
    from airflow_provider_musicai.sensors.musicai import MusicAIJobSensor
    from airflow_provider_musicai.triggers.musicai import MusicAIJobsTrigger, MusicAIJobTrigger

    assert MusicAIHook.default_conn_name == DEFAULT_CONN_ID == "musicai_default"
    for owner in (MusicAIHook, _MusicAIOperator, MusicAIJobSensor, MusicAIJobTrigger, MusicAIJobsTrigger):
        assert inspect.signature(owner.__init__).parameters["musicai_conn_id"].default == DEFAULT_CONN_ID


def test_status_log_logs_each_change_once_and_warns_once_per_unknown_status(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.status_log")
    status_log = StatusLog("job-1", logger, started=0.0)
    with caplog.at_level(logging.INFO, logger="test.status_log"):
        changes = [status_log.observe(s) for s in ("QUEUED", "QUEUED", "WEIRD\n", "WEIRD\n", "SUCCEEDED")]
    assert changes == [True, False, True, False, True]
    assert status_log.last == "SUCCEEDED"
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(infos) == 3 and len(warnings) == 1
    assert re.fullmatch(r"Music AI job job-1 is QUEUED \(at \S+Z, [\d.]+s after the wait began\)", infos[0])
    assert "WEIRD\\n" in infos[1]  # server text is made printable: no forged log line
    assert "unknown status" in warnings[0]


def test_utc_stamp() -> None:
    assert utc_stamp(0) == "1970-01-01T00:00:00Z"


def test_failure_message_of_a_job_whose_error_is_not_an_object() -> None:
    from airflow_provider_musicai.trigger_events import failure_message

    text = failure_message({"id": "j", "status": "FAILED", "error": "boom"})
    assert text == "Music AI job j FAILED: UNKNOWN (no title): no message"


def test_waiting_without_a_job_is_a_typed_error_not_an_assert() -> None:
    from airflow_provider_musicai.operators.musicai import MusicAICreateJobOperator

    operator = MusicAICreateJobOperator(task_id="t", name="n", workflow="w", workflow_params={})
    with pytest.raises(MusicAIError, match="no Music AI job"):
        operator._wait_here(None)
