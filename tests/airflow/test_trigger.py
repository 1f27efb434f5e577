"""MusicAIJobTrigger against the emulator: events (and reading them back), serialization, transient
errors, deadline, kill."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_musicai.exceptions import MusicAIError, MusicAIJobFailedError, MusicAITimeoutError
from airflow_provider_musicai.trigger_events import job_from_event
from airflow_provider_musicai.triggers import musicai as trigger_module
from airflow_provider_musicai.triggers._poller import shared_poller
from airflow_provider_musicai.triggers.musicai import MusicAIJobTrigger
from tests.helpers.reliability import wait_until_async

STEMS = "music-ai/stems-vocals-accompaniment"


def collect(trigger: MusicAIJobTrigger, within: float | None = None) -> list[Any]:
    """Every event the trigger yields (it must yield exactly one); ``within`` seconds at most."""

    async def run() -> list[Any]:
        return [event async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(run(), within))


def create_job(hook: Any, input_url: Any) -> str:
    return str(hook.create_job("trigger test", STEMS, {"inputUrl": input_url()}))


def test_serialize_round_trip_is_plain_and_secret_free(musicai: Any) -> None:
    from airflow.serialization.serialized_objects import BaseSerialization

    trigger = MusicAIJobTrigger(
        job_id="job-1",
        poll_interval=2,
        deadline=1_900_000_000.5,
        delete_on_kill=True,
        max_consecutive_errors=3,
        workflow=STEMS,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_musicai.triggers.musicai.MusicAIJobTrigger"
    assert kwargs == {
        "job_id": "job-1",
        "musicai_conn_id": "musicai_default",
        "poll_interval": 2.0,
        "deadline": 1_900_000_000.5,
        "delete_on_kill": True,
        "max_consecutive_errors": 3,
        "workflow": STEMS,
    }
    assert all(isinstance(value, (str, int, float, bool, type(None))) for value in kwargs.values())
    text = json.dumps(kwargs)
    assert musicai.api_key not in text and "http" not in text and "?" not in text
    # Through Airflow's own serializer, as the trigger row is stored, and back.
    restored = BaseSerialization.deserialize(BaseSerialization.serialize(kwargs))
    assert MusicAIJobTrigger(**restored).serialize() == (classpath, kwargs)


def test_success_emits_one_event_with_a_document_free_of_signed_urls(hook: Any, input_url: Any) -> None:
    job_id = create_job(hook, input_url)
    events = collect(MusicAIJobTrigger(job_id=job_id, poll_interval=0.2))
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "success" and payload["job_id"] == job_id
    job = payload["job"]
    assert job["id"] == job_id and job["status"] == "SUCCEEDED"
    assert set(job["result"]) == {"vocals", "accompaniments"}
    # Event payloads are logged by the triggerer and stored: no signed URL in them. Results are
    # references the hook resolves on use; the input URL keeps its path only.
    assert job["result"]["vocals"] == f"musicai-result://{job_id}/vocals"
    assert urlsplit(job["workflowParams"]["inputUrl"]).query in ("", "<redacted>")
    assert "X-Signature" not in json.dumps(payload)
    assert job_from_event(payload) == job  # what the resumed task reads back


def test_failed_job_is_an_error_event_with_code_title_and_message(
    hook: Any, input_url: Any, musicai: Any
) -> None:
    musicai.admin.fail_jobs(1, code="BAD_INPUT")
    job_id = create_job(hook, input_url)
    (event,) = collect(MusicAIJobTrigger(job_id=job_id, poll_interval=0.2))
    payload = event.payload
    assert payload["status"] == "error"
    assert payload["job"]["status"] == "FAILED"
    assert payload["job"]["error"]["code"] == "BAD_INPUT"
    assert "BAD_INPUT (Invalid input)" in payload["message"]
    with pytest.raises(MusicAIJobFailedError) as caught:
        job_from_event(payload)
    assert caught.value.job_id == job_id and caught.value.code == "BAD_INPUT"


def test_transient_errors_are_tolerated(hook: Any, input_url: Any, musicai: Any) -> None:
    job_id = create_job(hook, input_url)
    # 6 failures = two whole poll cycles lost (each list request is 1 attempt + 2 hook retries).
    musicai.admin.script_faults({"match": "GET /v1/job", "fault": "503", "count": 6, "retry_after": 0})
    (event,) = collect(MusicAIJobTrigger(job_id=job_id, poll_interval=0.1, max_consecutive_errors=3))
    assert event.payload["status"] == "success"
    assert musicai.admin.counters()["faults"] == {"503": 6}


def test_too_many_consecutive_errors_end_the_wait(hook: Any, input_url: Any, musicai: Any) -> None:
    job_id = create_job(hook, input_url)
    musicai.admin.set_faults(
        rate=1.0, weights={"503": 1}, match=["GET /v1/job", "GET /v1/job/{id}"], retry_after=0
    )
    (event,) = collect(MusicAIJobTrigger(job_id=job_id, poll_interval=0.05, max_consecutive_errors=2))
    payload = event.payload
    assert payload["status"] == "error" and payload["job"] is None
    assert "2 times in a row" in payload["message"] and "503" in payload["message"]


def test_deadline_gives_a_timeout_event_with_the_last_status(hook: Any, input_url: Any, musicai: Any) -> None:
    musicai.admin.configure(queued_seconds=60)
    job_id = create_job(hook, input_url)
    # The deadline must cut the (here 10-minute) poll interval short: the event comes long before.
    # It leaves the first poll (which gives the last status) 5 s: 0.6 s was too short on a busy machine.
    trigger = MusicAIJobTrigger(job_id=job_id, poll_interval=600, deadline=time.time() + 5)
    (event,) = collect(trigger, within=120)
    payload = event.payload
    assert payload["status"] == "timeout" and payload["last_status"] == "QUEUED"
    assert job_id in payload["message"] and "deadline" in payload["message"]
    with pytest.raises(MusicAITimeoutError) as caught:
        job_from_event(payload)
    assert caught.value.job_id == job_id and caught.value.last_status == "QUEUED"


def test_a_deadline_already_past_times_out_without_a_request(musicai: Any) -> None:
    (event,) = collect(MusicAIJobTrigger(job_id="any-job", deadline=time.time() - 1))
    assert event.payload["status"] == "timeout"
    assert sum(musicai.admin.counters()["requests"].values()) == 0


def test_missing_job_is_an_immediate_error(musicai: Any) -> None:
    # Immediate: no (here 10-minute) poll interval is waited, and the 404 is asked once.
    (event,) = collect(MusicAIJobTrigger(job_id=str(uuid.uuid4()), poll_interval=600), within=120)
    assert event.payload["status"] == "error"
    assert "404" in event.payload["message"]
    assert musicai.admin.counters()["statuses"] == {"404": 1}
    with pytest.raises(MusicAIError, match="404"):
        job_from_event(event.payload)


def test_on_kill_deletes_the_job_when_asked(hook: Any, input_url: Any, musicai: Any) -> None:
    musicai.admin.configure(queued_seconds=60)
    job_id = create_job(hook, input_url)
    asyncio.run(MusicAIJobTrigger(job_id=job_id, delete_on_kill=False).on_kill())
    assert [job["id"] for job in musicai.admin.jobs()] == [job_id]
    asyncio.run(MusicAIJobTrigger(job_id=job_id, delete_on_kill=True).on_kill())
    assert musicai.admin.jobs() == []
    # A second kill (job already gone) is harmless.
    asyncio.run(MusicAIJobTrigger(job_id=job_id, delete_on_kill=True).on_kill())


@pytest.mark.parametrize("killed_by_user", [True, False])
def test_airflow_2_style_cancellation_deletes_only_on_a_user_kill(
    hook: Any, input_url: Any, musicai: Any, monkeypatch: pytest.MonkeyPatch, killed_by_user: bool
) -> None:
    """Without ``BaseTrigger.on_kill`` (Airflow < 3.3), a cancelled trigger asks the TI's state."""
    monkeypatch.setattr(trigger_module, "TRIGGER_HAS_ON_KILL", False)
    monkeypatch.setattr(trigger_module, "_ti_left_deferral_by_user", lambda ti: killed_by_user)
    musicai.admin.configure(queued_seconds=60)
    job_id = create_job(hook, input_url)
    trigger = MusicAIJobTrigger(job_id=job_id, poll_interval=0.1, delete_on_kill=True)
    trigger.task_instance = type("TI", (), {"task_id": "t"})()  # type: ignore[assignment]

    async def run_then_cancel() -> None:
        task = asyncio.ensure_future(collect_async(trigger))
        poller = shared_poller(trigger.musicai_conn_id, trigger.poll_interval, trigger.max_consecutive_errors)
        await wait_until_async("the trigger to wait on its job", lambda: poller.waiting == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run_then_cancel())
    remaining = [job["id"] for job in musicai.admin.jobs()]
    assert remaining == ([] if killed_by_user else [job_id])


async def collect_async(trigger: MusicAIJobTrigger) -> list[Any]:
    return [event async for event in trigger.run()]
