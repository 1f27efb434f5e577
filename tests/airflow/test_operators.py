"""Operators called the way the task runner calls them, against the emulator."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_musicai.deadlines import TRIGGER_TIMEOUT_GRACE
from airflow_provider_musicai.exceptions import (
    MusicAIError,
    MusicAIJobFailedError,
    MusicAINotFoundError,
    MusicAITimeoutError,
)
from airflow_provider_musicai.jobs import IDEMPOTENCY_METADATA_KEY
from airflow_provider_musicai.operators.musicai import (
    MusicAICreateJobOperator,
    MusicAIDeleteJobOperator,
    MusicAIDownloadResultsOperator,
    MusicAIUploadOperator,
)
from airflow_provider_musicai.triggers.musicai import MusicAIJobTrigger
from tests.helpers.airflow import FakeStateStore, FakeTI
from tests.helpers.audio import wav_bytes

STEMS = "music-ai/stems-vocals-accompaniment"


def create_op(url: str, **kwargs: Any) -> MusicAICreateJobOperator:
    defaults: dict[str, Any] = {
        "task_id": "stems",
        "name": "stems",
        "workflow": STEMS,
        "workflow_params": {"inputUrl": url},
        "poll_interval": 0.2,
        "deferrable": False,
    }
    return MusicAICreateJobOperator(**{**defaults, **kwargs})


def task_deferred() -> type[BaseException]:
    from airflow.providers.common.compat.sdk import TaskDeferred

    return TaskDeferred  # type: ignore[no-any-return]


# -- MusicAICreateJobOperator -----------------------------------------------------------------


def test_create_waits_and_returns_the_final_document(musicai: Any, input_url: Any, make_context: Any) -> None:
    ti = FakeTI()
    job = create_op(input_url(), metadata={"user": 7}).execute(make_context(ti))
    assert job["status"] == "SUCCEEDED" and set(job["result"]) == {"vocals", "accompaniments"}
    results = {f"result.{k}": v for k, v in job["result"].items()}
    assert ti.xcoms == {"job_id": job["id"], "musicai_job_url": "", **results}  # "": no job_url_template
    # No signed URL in what goes to XCom: result references, resolved by the hook on use.
    assert job["result"]["vocals"] == f"musicai-result://{job['id']}/vocals"
    assert "X-Signature" not in json.dumps(job)
    metadata = job["metadata"]
    assert metadata["user"] == 7 and metadata["airflowDagId"] == "dag" and metadata["airflowTaskId"] == "task"
    assert metadata[IDEMPOTENCY_METADATA_KEY].startswith("airflow-")


def test_without_waiting_returns_the_job_id(musicai: Any, input_url: Any, make_context: Any) -> None:
    musicai.admin.configure(queued_seconds=60)
    ti = FakeTI()
    job_id = create_op(input_url(), wait_for_completion=False).execute(make_context(ti))
    assert isinstance(job_id, str) and ti.xcoms["job_id"] == job_id
    assert musicai.admin.jobs()[0]["status"] == "QUEUED"


def test_failed_job_raises_with_the_api_code_title_and_message(
    musicai: Any, input_url: Any, make_context: Any
) -> None:
    musicai.admin.fail_jobs(1, code="INTERNAL_ERROR")
    with pytest.raises(MusicAIJobFailedError) as caught:
        create_op(input_url()).execute(make_context())
    assert caught.value.code == "INTERNAL_ERROR" and caught.value.title == "Internal error"
    assert "injected by the emulator" in (caught.value.error_message or "")


def test_bad_input_fails_the_job_with_bad_input(musicai: Any, input_url: Any, make_context: Any) -> None:
    with pytest.raises(MusicAIJobFailedError) as caught:
        create_op(input_url(b"not audio at all", name="noise.wav")).execute(make_context())
    assert caught.value.code == "BAD_INPUT"


def test_wait_timeout_leaves_the_job_for_a_retry(musicai: Any, input_url: Any, make_context: Any) -> None:
    musicai.admin.configure(queued_seconds=60)
    with pytest.raises(MusicAITimeoutError) as caught:
        create_op(input_url(), timeout=0.5, retries=1).execute(make_context())
    assert caught.value.last_status == "QUEUED"
    assert len(musicai.admin.jobs()) == 1


def test_deferrable_defers_with_a_serializable_trigger(
    musicai: Any, input_url: Any, make_context: Any
) -> None:
    ti = FakeTI()
    op = create_op(input_url(), deferrable=True, timeout=600, poll_interval=7, delete_on_kill=True)
    with pytest.raises(task_deferred()) as caught:
        op.execute(make_context(ti))
    deferred: Any = caught.value
    assert deferred.method_name == "execute_complete"
    trigger = deferred.trigger
    assert isinstance(trigger, MusicAIJobTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["job_id"] == ti.xcoms["job_id"] and kwargs["poll_interval"] == 7.0
    assert kwargs["delete_on_kill"] is True and kwargs["workflow"] == STEMS
    assert kwargs["deadline"] == pytest.approx(time.time() + 600, abs=5)
    assert deferred.timeout.total_seconds() == pytest.approx(600 + TRIGGER_TIMEOUT_GRACE, abs=5)


def test_execution_timeout_survives_deferral(musicai: Any, input_url: Any, make_context: Any) -> None:
    """Airflow 3 restarts execution_timeout on resume: the deadline keeps what is left of it."""
    ti = FakeTI()
    ti.start_date = datetime.now(UTC) - timedelta(seconds=40)
    op = create_op(input_url(), deferrable=True, execution_timeout=timedelta(seconds=100))
    with pytest.raises(task_deferred()) as caught:
        op.execute(make_context(ti))
    deadline = caught.value.trigger.serialize()[1]["deadline"]  # type: ignore[attr-defined]
    # 100 s from the task's start, less a 5 s margin so the trigger reports the timeout itself.
    assert deadline == pytest.approx(ti.start_date.timestamp() + 95, abs=2)


def test_execute_complete_returns_the_events_document(musicai: Any, make_context: Any) -> None:
    public = {"id": "j1", "status": "SUCCEEDED", "result": {"vocals": "musicai-result://j1/vocals"}}
    event = {"status": "success", "job_id": "j1", "job": public, "message": "ok"}
    assert create_op("unused").execute_complete(make_context(), event) == public
    before = sum(musicai.admin.counters()["requests"].values())
    assert before == 0, "resuming costs no request"


def test_execute_complete_raises_what_the_event_reports(musicai: Any, make_context: Any) -> None:
    op = create_op("unused")
    failed = {
        "id": "j1",
        "status": "FAILED",
        "error": {"code": "TIMEOUT", "title": "Timeout", "message": "Input unreachable."},
    }
    with pytest.raises(MusicAIJobFailedError) as caught:
        op.execute_complete(
            make_context(), {"status": "error", "job_id": "j1", "job": failed, "message": "x"}
        )
    assert (caught.value.code, caught.value.title, caught.value.error_message) == (
        "TIMEOUT",
        "Timeout",
        "Input unreachable.",
    )
    with pytest.raises(MusicAITimeoutError) as timed_out:
        op.execute_complete(
            make_context(),
            {"status": "timeout", "job_id": "j1", "job": None, "message": "late", "last_status": "STARTED"},
        )
    assert timed_out.value.last_status == "STARTED"
    with pytest.raises(MusicAIError, match="polling broke"):
        op.execute_complete(
            make_context(), {"status": "error", "job_id": "j1", "job": None, "message": "polling broke"}
        )


def test_on_kill_deletes_the_job_being_waited_for(musicai: Any, input_url: Any, make_context: Any) -> None:
    musicai.admin.configure(queued_seconds=60)
    op = create_op(input_url(), delete_on_kill=True)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            # Airflow 2's ExecutorSafeguard keeps thread-local state that a new thread lacks.
            safeguard = getattr(type(op).execute, "__wrapped__", None)
            (safeguard or type(op).execute)(op, make_context())
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60  # the job exists (generously: the machine may be busy)
    while not op.job_id and time.monotonic() < deadline:
        time.sleep(0.05)
    assert op.job_id, "the operator never created its job"
    op.on_kill()
    assert musicai.admin.jobs() == []
    worker.join(60)
    assert errors and isinstance(errors[0], MusicAINotFoundError)


def test_on_kill_keeps_the_job_unless_asked(musicai: Any, input_url: Any, make_context: Any) -> None:
    musicai.admin.configure(queued_seconds=60)
    op = create_op(input_url(), wait_for_completion=False, delete_on_kill=False)
    op.execute(make_context())
    op.on_kill()
    assert len(musicai.admin.jobs()) == 1


# -- retry without duplicates -----------------------------------------------------------------


def retry(ti: FakeTI) -> FakeTI:
    ti.try_number += 1
    ti.xcoms = {}
    return ti


@pytest.mark.parametrize("store", [True, False], ids=["task-state-store", "api-lookup"])
def test_a_retry_reattaches_to_the_running_job(
    musicai: Any, input_url: Any, make_context: Any, store: bool
) -> None:
    musicai.admin.configure(queued_seconds=1.5)
    url = input_url()
    ti, state = FakeTI(), FakeStateStore() if store else None
    first = create_op(url, wait_for_completion=False).execute(make_context(ti, state))
    # The worker dies here; Airflow retries the task.
    job = create_op(url).execute(make_context(retry(ti), state))
    assert job["id"] == first and job["status"] == "SUCCEEDED"
    assert ti.xcoms["job_id"] == first
    assert musicai.admin.counters()["jobs_created"] == 1


@pytest.mark.parametrize("store", [True, False], ids=["task-state-store", "api-lookup"])
def test_a_retry_reuses_a_job_that_already_succeeded(
    musicai: Any, input_url: Any, make_context: Any, store: bool
) -> None:
    url = input_url()
    ti, state = FakeTI(), FakeStateStore() if store else None
    first = create_op(url).execute(make_context(ti, state))
    again = create_op(url).execute(make_context(retry(ti), state))
    assert again["id"] == first["id"]
    assert musicai.admin.counters()["jobs_created"] == 1


@pytest.mark.parametrize("store", [True, False], ids=["task-state-store", "api-lookup"])
def test_a_retry_after_a_failed_job_creates_exactly_one_new_job(
    musicai: Any, input_url: Any, make_context: Any, store: bool
) -> None:
    url = input_url()
    ti, state = FakeTI(), FakeStateStore() if store else None
    musicai.admin.fail_jobs(1)
    with pytest.raises(MusicAIJobFailedError):
        create_op(url).execute(make_context(ti, state))
    musicai.admin.configure(queued_seconds=60)
    second = create_op(url, wait_for_completion=False).execute(make_context(retry(ti), state))
    # A third try (the second one's worker died) reattaches to the second job.
    third = create_op(url, wait_for_completion=False).execute(make_context(retry(ti), state))
    assert third == second
    # The FAILED job was replaced (and deleted): one job per task instance is left.
    (job,) = musicai.admin.jobs()
    assert job["id"] == second and job["metadata"][IDEMPOTENCY_METADATA_KEY].endswith(".1")
    assert musicai.admin.counters()["jobs_created"] == 2


def test_a_crash_between_creation_and_the_record_is_covered(
    musicai: Any, input_url: Any, make_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key is recorded before the job is created, so a retry finds the job by its key."""
    musicai.admin.configure(queued_seconds=60)
    url = input_url()
    ti, state = FakeTI(), FakeStateStore()
    op = create_op(url, wait_for_completion=False)
    real_set = state.set
    calls: list[Any] = []

    def set_then_die(key: str, value: Any, **kwargs: Any) -> None:
        calls.append(value)
        if value["job_id"] is not None:
            raise SystemExit("worker killed")
        real_set(key, value, **kwargs)

    monkeypatch.setattr(state, "set", set_then_die)
    with pytest.raises(SystemExit):
        op.execute(make_context(ti, state))
    monkeypatch.setattr(state, "set", real_set)
    assert state.values["musicai_job"]["job_id"] is None
    again = create_op(url, wait_for_completion=False).execute(make_context(retry(ti), state))
    assert [job["id"] for job in musicai.admin.jobs()] == [again]


def test_a_deleted_job_is_replaced(musicai: Any, hook: Any, input_url: Any, make_context: Any) -> None:
    musicai.admin.configure(queued_seconds=60)
    url = input_url()
    ti, state = FakeTI(), FakeStateStore()
    first = create_op(url, wait_for_completion=False).execute(make_context(ti, state))
    hook.delete_job(first)
    second = create_op(url, wait_for_completion=False).execute(make_context(retry(ti), state))
    assert second != first and [job["id"] for job in musicai.admin.jobs()] == [second]


def test_reattach_can_be_turned_off(musicai: Any, input_url: Any, make_context: Any) -> None:
    musicai.admin.configure(queued_seconds=60)
    url = input_url()
    ti = FakeTI()
    first = create_op(url, wait_for_completion=False, reattach=False).execute(make_context(ti))
    second = create_op(url, wait_for_completion=False, reattach=False).execute(make_context(retry(ti)))
    assert first != second and musicai.admin.counters()["jobs_created"] == 2


def test_each_mapped_task_instance_has_its_own_job(musicai: Any, input_url: Any, make_context: Any) -> None:
    musicai.admin.configure(queued_seconds=60)
    url = input_url()
    ids = {
        create_op(url, wait_for_completion=False).execute(make_context(FakeTI(map_index=index)))
        for index in range(3)
    }
    assert len(ids) == 3
    # and their retries find their own jobs
    again = {
        create_op(url, wait_for_completion=False).execute(make_context(retry(FakeTI(map_index=index))))
        for index in range(3)
    }
    assert again == ids and musicai.admin.counters()["jobs_created"] == 3


# -- upload, download, delete -----------------------------------------------------------------


def logged(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """Everything logged so far: Airflow 3 renders task logs with structlog to stdout, 2 with logging."""
    out, err = capfd.readouterr()
    return out + err + caplog.text


def test_upload_returns_the_download_url_sealed_and_logs_it_redacted(
    musicai: Any,
    hook: Any,
    tmp_path: Any,
    make_context: Any,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "in.wav"
    source.write_bytes(wav_bytes(0.5))
    caplog.set_level(logging.DEBUG)
    sealed = MusicAIUploadOperator(task_id="up", source=str(source)).execute(make_context())
    assert sealed.startswith("musicai-sealed:")
    url = hook.resolve_references(sealed)  # what create_job does with it
    query = urlsplit(url).query
    assert "X-Signature" in query
    text = logged(capfd, caplog)
    assert "Uploaded" in text and urlsplit(url).path in text
    assert query not in text and musicai.api_key not in text


def test_download_writes_every_result(musicai: Any, hook: Any, input_url: Any, tmp_path: Any) -> None:
    job_id = hook.create_job("dl", "music-ai/beats-chords-key", {"inputUrl": input_url()})
    job = hook.wait_for_job(job_id, poll_interval=0.2)
    # A job document (e.g. the CreateJob operator's XCom) works as well as an id.
    written = MusicAIDownloadResultsOperator(
        task_id="dl", job_id=job, destination=str(tmp_path / "out")
    ).execute({})
    assert set(written) == {"chords", "beats", "bpm", "key"}
    for path in written.values():
        assert (tmp_path / "out" / path.rsplit("/", 1)[-1]).stat().st_size > 0


def test_delete_takes_ids_documents_and_lists_and_warns_on_missing(
    musicai: Any,
    hook: Any,
    input_url: Any,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    musicai.admin.configure(queued_seconds=60)
    url = input_url()
    first = hook.create_job("a", STEMS, {"inputUrl": url})
    second = hook.create_job("b", STEMS, {"inputUrl": url})
    missing = "00000000-0000-4000-8000-000000000000"
    op = MusicAIDeleteJobOperator(task_id="rm", job_id=[first, {"id": second}, missing, None, "None", first])
    with caplog.at_level(logging.WARNING):
        deleted = op.execute({})
    assert deleted == [first, second]
    assert f"Music AI job {missing} does not exist" in logged(capfd, caplog)
    assert musicai.admin.jobs() == []


def test_template_fields() -> None:
    assert set(MusicAICreateJobOperator.template_fields) >= {
        "name",
        "workflow",
        "workflow_params",
        "metadata",
    }
    assert MusicAICreateJobOperator.template_fields_renderers["workflow_params"] == "json"
    assert "source" in MusicAIUploadOperator.template_fields
    assert {"job_id", "destination"} <= set(MusicAIDownloadResultsOperator.template_fields)
    assert "job_id" in MusicAIDeleteJobOperator.template_fields


def test_idempotency_keys_are_deterministic_per_task_instance() -> None:
    from airflow_provider_musicai.operators._reattach import TaskIdentity, generation_key, generation_of

    one = TaskIdentity("dag", "task", "run", -1, try_number=1)
    assert one.base_key == TaskIdentity("dag", "task", "run", -1, try_number=3).base_key  # every try
    assert one.base_key != TaskIdentity("dag", "task", "run", 0, try_number=1).base_key  # map index
    assert one.base_key != TaskIdentity("dag", "task", "run2", -1, try_number=1).base_key
    assert len(one.base_key) == len("airflow-") + 40
    base = one.base_key
    assert [generation_of(base, generation_key(base, n)) for n in (0, 1, 12)] == [0, 1, 12]
    assert generation_of(base, base + ".x") is None and generation_of(base, "other") is None
    assert generation_of(base, None) is None
