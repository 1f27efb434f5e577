"""MusicAIHook against the emulator over loopback: every endpoint, errors, retries, transfers."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import threading
import tracemalloc
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_musicai.exceptions import (
    MusicAIAPIError,
    MusicAIAuthError,
    MusicAIConfigurationError,
    MusicAIInputError,
    MusicAIInvalidRequestError,
    MusicAIJobFailedError,
    MusicAINotFoundError,
    MusicAIServerError,
    MusicAITimeoutError,
    MusicAITransportError,
)
from airflow_provider_musicai.hooks._transport import close_shared_async_clients, shared_async_client
from airflow_provider_musicai.hooks.musicai import MusicAIHook
from airflow_provider_musicai.jobs import IDEMPOTENCY_METADATA_KEY
from tests.helpers.hooks import HookOn, set_connection
from tests.helpers.hostile import HostileServer, Reply, Request

STEMS = "music-ai/stems-vocals-accompaniment"
BEATS = "music-ai/beats-chords-key"


def finished(hook: MusicAIHook, job_id: str) -> dict[str, Any]:
    return hook.wait_for_job(job_id, poll_interval=0.2, timeout=60)


class TestApplicationAndConnection:
    def test_get_application(self, hook: MusicAIHook) -> None:
        assert hook.get_application()["name"] == "Default Application"

    def test_test_connection_reports_the_application(self, hook: MusicAIHook) -> None:
        ok, message = hook.test_connection()
        assert ok
        assert "Default Application" in message

    def test_wrong_key_is_an_auth_error_that_does_not_echo_the_key(self, hook_on: HookOn) -> None:
        hook = hook_on(key="not-a-real-key-123")
        with pytest.raises(MusicAIAuthError) as caught:
            hook.get_application()
        assert caught.value.status_code == 401
        assert "not-a-real-key-123" not in str(caught.value)
        ok, message = hook.test_connection()
        assert not ok
        assert "401" in message

    def test_refused_port_is_a_transport_error(self, hook_on: HookOn, monkeypatch: Any) -> None:
        extra = {"max_retries": 1, "retry_backoff": 0.01}
        set_connection(monkeypatch, "musicai_dead", "http://127.0.0.1:9/v1", key="k", extra=extra)
        with pytest.raises(MusicAITransportError, match="cannot connect"):
            MusicAIHook("musicai_dead").get_application()

    def test_unresolvable_host_is_a_transport_error(self, monkeypatch: Any) -> None:
        invalid = "https://no-such-host.invalid/v1"
        set_connection(monkeypatch, "musicai_nxdomain", invalid, key="k", extra={"max_retries": 0})
        with pytest.raises(MusicAITransportError, match="cannot connect"):
            MusicAIHook("musicai_nxdomain").get_application()


class TestJobs:
    def test_full_life_cycle(
        self, hook: MusicAIHook, wav_file: Path, tmp_path: Path, musicai_emulator: Any
    ) -> None:
        url = hook.upload_file(wav_file)
        job_id = hook.create_job("life cycle", STEMS, {"inputUrl": url}, metadata={"track": 7, "ok": True})
        assert hook.get_job_status(job_id) in {"QUEUED", "STARTED"}
        job = finished(hook, job_id)
        assert job["status"] == "SUCCEEDED"
        assert job["metadata"]["track"] == 7
        assert hook.get_job(job_id)["id"] == job_id
        written = hook.download_results(job, tmp_path / "out")
        assert set(written) == {"vocals", "accompaniments"}
        for path in written.values():
            with wave.open(path) as stem:
                assert stem.getnframes() > 0
        hook.delete_job(job_id)
        with pytest.raises(MusicAINotFoundError):
            hook.get_job(job_id)
        with pytest.raises(MusicAINotFoundError):
            hook.delete_job(job_id)
        assert musicai_emulator.admin.counters()["credential_leaks"] == 0

    def test_mixed_results_write_values_to_result_json(
        self, hook: MusicAIHook, wav_file: Path, tmp_path: Path
    ) -> None:
        job = finished(hook, hook.create_job("beats", BEATS, {"inputUrl": hook.upload_file(wav_file)}))
        written = hook.download_results(job["id"], tmp_path)
        values = json.loads(Path(written["bpm"]).read_text())
        assert values == {"bpm": job["result"]["bpm"], "key": job["result"]["key"]}
        assert written["key"] == written["bpm"] == str(tmp_path.resolve() / "result.json")
        assert json.loads(Path(written["chords"]).read_text()) is not None
        assert not [name for name in os.listdir(tmp_path) if name.endswith(".part")]

    def test_download_names_cannot_escape_the_folder(
        self, hook: MusicAIHook, wav_file: Path, tmp_path: Path
    ) -> None:
        url = hook.upload_file(wav_file)
        job = {
            "id": "handmade",
            "status": "SUCCEEDED",
            "result": {"../../escape": url, "/abs/x": url, "n": 1},
        }
        written = hook.download_results(job, tmp_path / "dest")
        for path in written.values():
            assert Path(path).resolve().parent == (tmp_path / "dest").resolve()
        assert not (tmp_path / "escape").exists()
        assert Path(written["../../escape"]).read_bytes() == wav_file.read_bytes()

    def test_downloads_are_read_in_blocks_the_allocator_can_reuse(
        self, hook: MusicAIHook, wav_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # urllib3 allocates every 1 MiB block afresh (a page fault per block): a 1 GiB result took
        # 0.6-2.0 s in 1 MiB blocks and 0.45-0.8 s in 256 KiB blocks (curl: 1.0 s). See benchmarks/.
        from urllib3.response import HTTPResponse

        sizes: list[int] = []
        original = HTTPResponse.read1

        def spy(response: HTTPResponse, amt: int | None = None, decode_content: bool | None = None) -> bytes:
            sizes.append(amt or 0)
            return original(response, amt, decode_content)

        monkeypatch.setattr(HTTPResponse, "read1", spy)
        job = {"id": "blocks", "status": "SUCCEEDED", "result": {"input": hook.upload_file(wav_file)}}
        written = hook.download_results(job, tmp_path)
        assert Path(written["input"]).read_bytes() == wav_file.read_bytes()
        assert sizes and all(0 < size <= 256 << 10 for size in sizes)

    def test_download_to_object_storage(self, hook: MusicAIHook, wav_file: Path, tmp_path: Path) -> None:
        from airflow.providers.common.compat.sdk import ObjectStoragePath
        from fsspec.implementations.memory import MemoryFileSystem

        job = finished(hook, hook.create_job("to storage", BEATS, {"inputUrl": hook.upload_file(wav_file)}))
        destination = ObjectStoragePath(f"file://{tmp_path}/run1")
        written = hook.download_results(job, destination)
        assert (destination / "chords.json").exists()
        assert json.loads((destination / "result.json").read_text())["key"] == job["result"]["key"]
        assert written["chords"].endswith("/chords.json")
        written = hook.download_results(job, "memory://musicai-results/run1")
        memory = MemoryFileSystem()
        assert json.loads(memory.cat("/musicai-results/run1/result.json"))["bpm"] == job["result"]["bpm"]
        assert not [
            name for name in memory.ls("/musicai-results/run1", detail=False) if name.endswith(".part")
        ]

    def test_download_of_an_unfinished_or_failed_job_is_refused(
        self, hook: MusicAIHook, tmp_path: Path, wav_file: Path
    ) -> None:
        with pytest.raises(MusicAIJobFailedError, match="BAD_INPUT"):
            hook.download_results({"id": "x", "status": "FAILED", "error": {"code": "BAD_INPUT"}}, tmp_path)
        job_id = hook.create_job("early", STEMS, {"inputUrl": hook.upload_file(wav_file)})
        with pytest.raises(Exception, match="results exist only once it SUCCEEDED"):
            hook.download_results(job_id, tmp_path)

    def test_failed_job_raises_with_code_title_message(
        self, hook: MusicAIHook, musicai_emulator: Any, wav_file: Path
    ) -> None:
        musicai_emulator.admin.fail_jobs(1, code="INTERNAL_ERROR")
        job_id = hook.create_job("doomed", STEMS, {"inputUrl": hook.upload_file(wav_file)})
        with pytest.raises(MusicAIJobFailedError) as caught:
            finished(hook, job_id)
        assert (caught.value.code, caught.value.title) == ("INTERNAL_ERROR", "Internal error")
        assert caught.value.job_id == job_id

    def test_bad_input_fails_the_job(self, hook: MusicAIHook, tmp_path: Path) -> None:
        not_audio = tmp_path / "notes.wav"
        not_audio.write_text("this is not audio")
        job_id = hook.create_job("bad", STEMS, {"inputUrl": hook.upload_file(not_audio)})
        with pytest.raises(MusicAIJobFailedError, match="BAD_INPUT"):
            finished(hook, job_id)

    def test_wait_has_a_deadline(self, hook: MusicAIHook, musicai_emulator: Any, wav_file: Path) -> None:
        musicai_emulator.admin.configure(queued_seconds=30)
        job_id = hook.create_job("slow", STEMS, {"inputUrl": hook.upload_file(wav_file)})
        with pytest.raises(MusicAITimeoutError) as caught:
            hook.wait_for_job(job_id, poll_interval=0.2, timeout=0.5)
        assert caught.value.last_status == "QUEUED"

    def test_wait_survives_transient_errors(
        self, hook: MusicAIHook, musicai_emulator: Any, wav_file: Path
    ) -> None:
        job_id = hook.create_job("flaky", STEMS, {"inputUrl": hook.upload_file(wav_file)})
        musicai_emulator.admin.script_faults({"match": "GET /v1/job/*/status", "fault": "503", "count": 12})
        assert finished(hook, job_id)["status"] == "SUCCEEDED"

    def test_job_deleted_while_waited_on(
        self, hook: MusicAIHook, musicai_emulator: Any, wav_file: Path
    ) -> None:
        musicai_emulator.admin.configure(queued_seconds=30)
        job_id = hook.create_job("gone", STEMS, {"inputUrl": hook.upload_file(wav_file)})
        threading.Timer(0.3, hook.delete_job, args=(job_id,)).start()
        with pytest.raises(MusicAINotFoundError):
            hook.wait_for_job(job_id, poll_interval=0.1, timeout=30)

    @pytest.mark.parametrize(
        ("workflow", "params", "error", "words"),
        [
            ("no-such/workflow", {"inputUrl": "http://127.0.0.1:9/a.wav"}, MusicAINotFoundError, "404"),
            (STEMS, {}, MusicAIInvalidRequestError, "inputUrl"),
            (
                STEMS,
                {"inputUrl": "http://127.0.0.1:9/a.wav", "bogus": 1},
                MusicAIInvalidRequestError,
                "bogus",
            ),
        ],
    )
    def test_rejected_jobs(
        self,
        hook: MusicAIHook,
        musicai_emulator: Any,
        workflow: str,
        params: dict[str, Any],
        error: type[Exception],
        words: str,
    ) -> None:
        with pytest.raises(error, match=words):
            hook.create_job("rejected", workflow, params)
        assert musicai_emulator.admin.counters()["jobs_created"] == 0

    @pytest.mark.parametrize(
        ("kwargs", "words"),
        [
            ({"metadata": {"nested": {"a": 1}}}, "metadata"),
            ({"metadata": {"list": [1]}}, "metadata"),
            ({"name": ""}, "name"),
            ({"params": "inputUrl=x"}, "params"),
        ],
    )
    def test_invalid_job_arguments_fail_before_any_request(
        self, hook: MusicAIHook, musicai_emulator: Any, kwargs: dict[str, Any], words: str
    ) -> None:
        arguments: dict[str, Any] = {"name": "n", "workflow": STEMS, "params": {"inputUrl": "x"}, **kwargs}
        with pytest.raises(MusicAIConfigurationError, match=words):
            hook.create_job(**arguments)
        assert musicai_emulator.admin.counters()["requests_total"] == 0

    def test_server_side_invalid_id_is_a_400(self, hook: MusicAIHook) -> None:
        with pytest.raises(MusicAIInvalidRequestError) as caught:
            hook.get_job("not-a-uuid")
        assert caught.value.status_code == 400

    def test_jobs_are_isolated_between_keys(
        self, hook_on: HookOn, musicai_emulator: Any, wav_file: Path
    ) -> None:
        mine = hook_on()
        theirs = hook_on(conn_id="musicai_other", key=musicai_emulator.other_api_key)
        job_id = mine.create_job("mine", STEMS, {"inputUrl": mine.upload_file(wav_file)})
        with pytest.raises(MusicAINotFoundError):
            theirs.get_job(job_id)
        assert [job["id"] for job in theirs.list_jobs()] == []


class TestListing:
    @pytest.mark.parametrize("shape", ["array", "object"])
    def test_every_page_in_both_shapes(self, hook: MusicAIHook, musicai_emulator: Any, shape: str) -> None:
        musicai_emulator.admin.configure(list_shape=shape)
        created = {
            hook.create_job(f"job {n}", STEMS, {"inputUrl": "http://127.0.0.1:9/x.wav"}) for n in range(7)
        }
        before = musicai_emulator.admin.counters()["requests"].get("GET /v1/job", 0)
        listed = [job["id"] for job in hook.list_jobs(page_size=3)]
        assert sorted(listed) == sorted(created)
        assert musicai_emulator.admin.counters()["requests"]["GET /v1/job"] - before == 3

    def test_repeated_filters(self, hook: MusicAIHook, musicai_emulator: Any, wav_file: Path) -> None:
        musicai_emulator.admin.configure(queued_seconds=30)
        queued = hook.create_job("queued", STEMS, {"inputUrl": hook.upload_file(wav_file)})
        other = hook.create_job("other workflow", BEATS, {"inputUrl": hook.upload_file(wav_file)})
        ids = [job["id"] for job in hook.list_jobs(status=["QUEUED", "STARTED"], workflow=[STEMS])]
        assert ids == [queued]
        both = {job["id"] for job in hook.list_jobs(workflow=[STEMS, BEATS])}
        assert both == {queued, other}
        assert list(hook.list_jobs(status="SUCCEEDED")) == []

    def test_unknown_status_filter_is_refused_client_side(self, hook: MusicAIHook) -> None:
        with pytest.raises(MusicAIConfigurationError, match="DONE"):
            list(hook.list_jobs(status="DONE"))

    def test_list_workflows(self, hook: MusicAIHook) -> None:
        slugs = {workflow["slug"] for workflow in hook.list_workflows(page_size=1)}
        assert {STEMS, BEATS, "music-ai/transcribe-vocals"} <= slugs


class TestRetries:
    @pytest.mark.parametrize("fault", ["429", "500", "502", "503", "drop", "truncate"])
    def test_transient_faults_are_retried(self, hook: MusicAIHook, musicai_emulator: Any, fault: str) -> None:
        musicai_emulator.admin.script_faults({"match": "GET /v1/application", "fault": fault, "count": 2})
        assert hook.get_application()["name"] == "Default Application"
        assert musicai_emulator.admin.counters()["requests"]["GET /v1/application"] == 3

    def test_slow_answer_past_the_read_timeout_is_retried(
        self, hook_on: HookOn, musicai_emulator: Any
    ) -> None:
        hook = hook_on(timeout=0.5)
        musicai_emulator.admin.script_faults({"match": "GET /v1/application", "fault": "slow", "seconds": 2})
        assert hook.get_application()["name"] == "Default Application"

    def test_retry_after_is_honoured(
        self, hook: MusicAIHook, musicai_emulator: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        musicai_emulator.admin.script_faults(
            {"match": "GET /v1/application", "fault": "429", "retry_after": 1, "count": 1}
        )
        with caplog.at_level(logging.WARNING):
            hook.get_application()
        assert "retry 1/4 in 1.0s" in caplog.text

    def test_retries_give_up_with_a_typed_error(self, hook: MusicAIHook, musicai_emulator: Any) -> None:
        musicai_emulator.admin.script_faults({"match": "GET /v1/application", "fault": "502", "count": 50})
        with pytest.raises(MusicAIServerError) as caught:
            hook.get_application()
        assert caught.value.status_code == 502
        assert musicai_emulator.admin.counters()["requests"]["GET /v1/application"] == 5

    @pytest.mark.parametrize("status", ["400", "404"])
    def test_client_errors_are_not_retried(
        self, hook: MusicAIHook, musicai_emulator: Any, status: str
    ) -> None:
        with pytest.raises(MusicAIAPIError):
            hook.get_job("00000000-0000-4000-8000-000000000000" if status == "404" else "bad-id")
        assert sum(musicai_emulator.admin.counters()["requests"].values()) == 1

    @pytest.mark.parametrize("fault", ["drop_after", "500", "502", "503", "drop"])
    def test_lost_job_creation_makes_exactly_one_job(
        self, hook: MusicAIHook, musicai_emulator: Any, fault: str
    ) -> None:
        musicai_emulator.admin.script_faults({"match": "POST /v1/job", "fault": fault, "count": 1})
        job_id = hook.create_job("once", STEMS, {"inputUrl": "http://127.0.0.1:9/x.wav"})
        jobs = musicai_emulator.admin.jobs()
        assert [job["id"] for job in jobs] == [job_id]
        assert jobs[0]["metadata"][IDEMPOTENCY_METADATA_KEY]

    def test_lost_creation_that_cannot_be_checked_is_not_resent(
        self, hook: MusicAIHook, musicai_emulator: Any
    ) -> None:
        musicai_emulator.admin.script_faults(
            {"match": "POST /v1/job", "fault": "drop_after", "count": 1},
            {"match": "GET /v1/job", "fault": "503", "count": 50},
        )
        with pytest.raises(Exception, match="not sending again"):
            hook.create_job("unsure", STEMS, {"inputUrl": "http://127.0.0.1:9/x.wav"})
        assert musicai_emulator.admin.counters()["jobs_created"] == 1

    def test_delete_whose_answer_is_lost_succeeds(self, hook: MusicAIHook, musicai_emulator: Any) -> None:
        job_id = hook.create_job("bye", STEMS, {"inputUrl": "http://127.0.0.1:9/x.wav"})
        musicai_emulator.admin.script_faults({"match": "DELETE /v1/job/*", "fault": "drop_after", "count": 1})
        hook.delete_job(job_id)
        assert musicai_emulator.admin.jobs() == []

    def test_delete_if_exists_says_whether_it_deleted(self, hook: MusicAIHook, musicai_emulator: Any) -> None:
        first = hook.create_job("one", STEMS, {"inputUrl": "http://127.0.0.1:9/x.wav"})
        second = hook.create_job("two", STEMS, {"inputUrl": "http://127.0.0.1:9/x.wav"})
        assert hook.delete_job_if_exists(first) is True
        assert hook.delete_job_if_exists(first) is False
        assert asyncio.run(hook.adelete_job_if_exists(second)) is True
        assert asyncio.run(hook.adelete_job_if_exists(second)) is False
        assert musicai_emulator.admin.jobs() == []


class TestUploads:
    def test_sources_of_every_kind(self, hook: MusicAIHook, wav_file: Path, musicai_emulator: Any) -> None:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        data = wav_file.read_bytes()
        from fsspec.implementations.memory import MemoryFileSystem

        MemoryFileSystem().pipe("/musicai-sources/track.wav", data)
        storage_path = ObjectStoragePath(f"file://{wav_file}")

        class Pipe(io.RawIOBase):  # a stream that cannot seek
            def __init__(self) -> None:
                self.inner = io.BytesIO(data)

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                chunk = self.inner.read(len(buffer))
                buffer[: len(chunk)] = chunk
                return len(chunk)

        with wav_file.open("rb") as handle:
            sources = [
                str(wav_file),
                wav_file,
                f"file://{wav_file}",
                storage_path,
                "memory://musicai-sources/track.wav",
                handle,
                io.BufferedReader(Pipe()),
            ]
            for source in sources:
                url = hook.upload_file(source)
                assert requests.get(url, timeout=10).content == data, source
            assert not handle.closed
        counters = musicai_emulator.admin.counters()
        assert counters["credential_leaks"] == 0

    @pytest.mark.parametrize(
        ("make", "words"),
        [
            (lambda tmp: tmp / "missing.wav", "does not exist"),
            (lambda tmp: tmp, "is a folder"),
            (lambda tmp: (tmp / "empty.wav").write_bytes(b"") or tmp / "empty.wav", "is empty"),
            (lambda tmp: "memory://musicai-sources/nothing.wav", "does not exist"),
            (lambda tmp: io.BytesIO(b""), "empty"),
            (lambda tmp: io.StringIO("text"), "text mode"),
        ],
    )
    def test_bad_sources_fail_before_any_request(
        self,
        hook: MusicAIHook,
        musicai_emulator: Any,
        tmp_path: Path,
        make: Callable[[Path], Any],
        words: str,
    ) -> None:
        with pytest.raises(MusicAIInputError, match=words):
            hook.upload_file(make(tmp_path))
        assert musicai_emulator.admin.counters()["requests_total"] == 0

    @pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
    def test_unreadable_source(self, hook: MusicAIHook, wav_file: Path) -> None:
        wav_file.chmod(0)
        with pytest.raises(MusicAIInputError, match="not readable"):
            hook.upload_file(wav_file)

    @pytest.mark.parametrize("fault", ["503", "drop", "429"])
    def test_failed_put_restarts_with_a_fresh_url(
        self, hook: MusicAIHook, musicai_emulator: Any, wav_file: Path, fault: str
    ) -> None:
        musicai_emulator.admin.set_faults(
            script=[{"match": "PUT /storage/*", "fault": fault, "count": 1}], scope="both"
        )
        url = hook.upload_file(wav_file)
        assert requests.get(url, timeout=10).content == wav_file.read_bytes()
        assert musicai_emulator.admin.counters()["requests"]["GET /v1/upload"] == 2

    def test_expired_upload_urls_end_in_a_clear_error(
        self, hook: MusicAIHook, musicai_emulator: Any, wav_file: Path
    ) -> None:
        musicai_emulator.admin.configure(upload_url_ttl_seconds=0)
        with pytest.raises(MusicAIAPIError) as caught:
            hook.upload_file(wav_file)
        assert caught.value.status_code == 400  # Cloud Storage's answer to an expired signed URL
        assert "ExpiredToken" in str(caught.value)
        assert "?" not in str(caught.value).split("PUT ", 1)[1].split(" ", 1)[0].replace("?<redacted>", "")

    def test_large_upload_streams_in_bounded_memory(
        self, hook: MusicAIHook, tmp_path: Path, musicai_emulator: Any
    ) -> None:
        big = tmp_path / "big.wav"
        size = 192 * 1024 * 1024
        with big.open("wb") as handle:
            handle.truncate(size)
        tracemalloc.start()
        try:
            hook.upload_file(big)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 16 * 1024 * 1024
        assert musicai_emulator.admin.counters()["bytes_stored"] == size


class TestSecrets:
    def test_key_and_signatures_never_reach_logs_or_storage(
        self,
        hook: MusicAIHook,
        musicai_emulator: Any,
        wav_file: Path,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        with caplog.at_level(logging.DEBUG):
            musicai_emulator.admin.set_faults(
                script=[{"match": "PUT /storage/*", "fault": "503", "count": 1}], scope="both"
            )
            url = hook.upload_file(wav_file)
            job = finished(hook, hook.create_job("secret", STEMS, {"inputUrl": url}))
            hook.download_results(job, tmp_path)
        signature = url.split("?", 1)[1]
        assert musicai_emulator.api_key not in caplog.text
        assert signature not in caplog.text
        for result_url in job["result"].values():
            assert result_url.split("?", 1)[1] not in caplog.text
        assert musicai_emulator.admin.counters()["credential_leaks"] == 0

    def test_cross_origin_redirect_drops_the_key(self, musicai_emulator: Any, monkeypatch: Any) -> None:
        target = musicai_emulator.api_url

        def redirect(request: Request) -> Reply:
            return Reply(307, headers={"location": target + request.path.removeprefix("/v1")})

        with HostileServer(redirect) as server:
            set_connection(monkeypatch, "musicai_redirect", server, key=musicai_emulator.api_key)
            hook = MusicAIHook("musicai_redirect")
            with pytest.raises(MusicAIAuthError):
                hook.get_application()
            with pytest.raises(MusicAIAuthError):
                asyncio.run(hook.aget_application())


class TestAsync:
    def test_async_calls_share_one_pooled_client(
        self, hook_on: HookOn, wav_file: Path, musicai_emulator: Any
    ) -> None:
        first, second = hook_on(), hook_on()
        job_id = first.create_job("async", STEMS, {"inputUrl": first.upload_file(wav_file)})

        async def scenario() -> None:
            try:
                assert (await first.aget_job(job_id))["id"] == job_id
                assert await second.aget_job_status(job_id) in {"QUEUED", "STARTED", "SUCCEEDED"}
                assert [job["id"] async for job in first.alist_jobs(page_size=1)] == [job_id]
                assert shared_async_client(await first.aconfig()) is shared_async_client(
                    await second.aconfig()
                )
                musicai_emulator.admin.script_faults({"match": "GET /v1/job/*", "fault": "drop", "count": 1})
                assert (await second.aget_job(job_id))["id"] == job_id
                await first.adelete_job(job_id)
                with pytest.raises(MusicAINotFoundError):
                    await first.aget_job(job_id)
            finally:
                await close_shared_async_clients()

        asyncio.run(scenario())

    @pytest.mark.slow
    def test_pooled_connections_outlive_a_poll_interval(self, hook_on: HookOn, musicai_emulator: Any) -> None:
        # httpx closes connections idle for 5 s by default: a 10 s poll would reconnect every cycle.
        hook = hook_on()

        async def scenario() -> None:
            try:
                await hook.aget_application()
                opened = musicai_emulator.admin.counters()["connections"]["api"]["opened"]
                await asyncio.sleep(5.5)
                await hook.aget_application()
                assert musicai_emulator.admin.counters()["connections"]["api"]["opened"] == opened
            finally:
                await close_shared_async_clients()

        asyncio.run(scenario())


def test_an_answer_requests_cannot_parse_is_a_typed_transport_error(monkeypatch: Any) -> None:
    garbled = Reply(raw=b"HTTP/1.1 302 Found\r\nLocation: \x80\xff\r\nContent-Length: 0\r\n\r\n")
    with HostileServer(lambda request: garbled) as server:
        extra = {"max_retries": 2, "retry_backoff": 0.01}
        set_connection(monkeypatch, "musicai_garbled", server, key="k", extra=extra)
        with pytest.raises(MusicAITransportError, match="unreadable answer"):
            MusicAIHook("musicai_garbled").get_application()
