"""Job life cycle: timings, processing outcomes, input fetching rules and injected job errors."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.helpers.hostile import HostileServer, Reply, Request

pytestmark = pytest.mark.airflow_independent

STEMS = "music-ai/stems-vocals-accompaniment"
TRANSCRIBE = "music-ai/transcribe-vocals"
BEATS = "music-ai/beats-chords-key"


@pytest.fixture
def http_input(wav) -> Iterator[str]:
    """A loopback HTTP server serving ``/song.wav`` (and 404 elsewhere); yields its base URL."""

    def serve(request: Request) -> Reply:
        return Reply(200, body=wav) if request.path.startswith("/song.wav") else Reply(404)

    with HostileServer(serve) as server:
        yield server.url()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_follows_configured_timings(api, emu, wav):
    emu.admin.configure(queued_seconds=0.4, processing_seconds=0.4)
    url = api.upload(wav)
    start = time.monotonic()
    job_id = api.create(url)
    seen = []
    while time.monotonic() - start < 60:  # generous: the machine may be busy
        status = api.get(f"/job/{job_id}/status").json()["status"]
        if not seen or seen[-1][0] != status:
            seen.append((status, time.monotonic() - start))
        if status in ("SUCCEEDED", "FAILED"):
            break
        time.sleep(0.02)
    assert [s for s, _ in seen] == ["QUEUED", "STARTED", "SUCCEEDED"]
    # Never early (lower bounds hold on any machine); how late a busy machine observes a change is
    # not asserted, the emulator's own timestamps say when it happened.
    assert seen[1][1] >= 0.3 and seen[2][1] >= 0.7
    doc = api.get(f"/job/{job_id}").json()
    created, started, completed = (
        datetime.fromisoformat(doc[key].replace("Z", "+00:00"))
        for key in ("createdAt", "startedAt", "completedAt")
    )
    # Never early; a busy machine may admit the job late, as a busy service would (ms-rounded times).
    assert (started - created).total_seconds() >= 0.4 - 0.005
    assert (completed - started).total_seconds() >= 0.4 - 0.005


def test_all_workflows_succeed(api, wav):
    url = api.upload(wav)
    transcribe = api.wait(api.create(url, TRANSCRIBE))
    assert transcribe["status"] == "SUCCEEDED"
    assert transcribe["result"]["language"] == "en"
    lyrics = api.session.get(
        transcribe["result"]["lyrics"], headers={"Authorization": None}, timeout=10
    ).json()
    assert lyrics["lines"] and {"start", "end", "text"} <= set(lyrics["lines"][0])
    pt = api.post(
        "/job", json={"name": "n", "workflow": TRANSCRIBE, "params": {"inputUrl": url, "language": "pt"}}
    )
    assert api.wait(pt.json()["id"])["result"]["language"] == "pt"
    beats = api.wait(api.create(url, BEATS))
    assert beats["status"] == "SUCCEEDED"
    result = beats["result"]
    assert isinstance(result["bpm"], float) and 60 <= result["bpm"] <= 200
    assert result["key"].split(" ")[1] in ("major", "minor")
    again = api.wait(api.create(url, BEATS))["result"]
    assert (again["bpm"], again["key"]) == (result["bpm"], result["key"])
    import requests

    assert isinstance(requests.get(result["beats"], timeout=10).json(), list)
    assert isinstance(requests.get(result["chords"], timeout=10).json(), list)


def failed(api, input_url, workflow=STEMS):
    doc = api.wait(api.create(input_url, workflow))
    assert doc["status"] == "FAILED", doc
    assert doc["result"] is None and doc["completedAt"] is not None
    return doc["error"]


def test_missing_object_is_bad_input(api):
    urls = api.get("/upload").json()
    error = failed(api, urls["downloadUrl"])
    assert error == {"code": "BAD_INPUT", "title": "Invalid input", "message": "File not found."}


def test_empty_file_is_bad_input(api):
    error = failed(api, api.upload(b""))
    assert error["code"] == "BAD_INPUT" and error["title"] == "Invalid input" and "empty" in error["message"]


@pytest.mark.parametrize(
    "data", [b"hello, this is not audio at all" * 10, b"RIFF\x10\x00\x00\x00WAVEjunkjunk"]
)
def test_non_audio_or_corrupt_is_bad_input(api, data):
    error = failed(api, api.upload(data))
    assert error["code"] == "BAD_INPUT" and error["message"]


def test_upload_url_as_input_is_bad_input(api):
    urls = api.get("/upload").json()
    error = failed(api, urls["uploadUrl"])
    assert error["code"] == "BAD_INPUT" and "PUT" in error["message"]


def test_expired_input_url_is_bad_input(api, emu, wav):
    emu.admin.configure(download_url_ttl_seconds=-1)
    error = failed(api, api.upload(wav))
    assert error["code"] == "BAD_INPUT" and "expired" in error["message"]


def test_tampered_input_url_is_bad_input(api, wav):
    url = api.upload(wav)
    error = failed(api, url[:-4] + "0000")
    assert error["code"] == "BAD_INPUT" and "signature" in error["message"].lower()


def test_loopback_http_input(api, http_input):
    assert api.wait(api.create(http_input + "/song.wav?token=1"))["status"] == "SUCCEEDED"
    localhost = http_input.replace("127.0.0.1", "localhost")
    assert api.wait(api.create(localhost + "/song.wav"))["status"] == "SUCCEEDED"
    error = failed(api, http_input + "/missing.wav")
    assert error["code"] == "BAD_INPUT" and "404" in error["message"]


def test_unreachable_loopback_port_is_timeout(api):
    error = failed(api, f"http://127.0.0.1:{free_port()}/song.wav")
    assert error["code"] == "TIMEOUT" and error["title"] == "Timeout"


@pytest.mark.parametrize(
    "url", ["https://music.ai/demo.ogg", "http://10.255.255.1/a.wav", "http://[2001:db8::1]/x"]
)
def test_non_loopback_host_is_timeout_without_connecting(api, emu, url):
    emu.admin.configure(input_timeout_seconds=30)
    start = time.monotonic()
    error = failed(api, url)
    assert error["code"] == "TIMEOUT"
    assert time.monotonic() - start < 5, "the emulator must not try to connect"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/a.wav", "file:///etc/passwd", "not a url"])
def test_other_schemes_are_bad_input(api, url):
    assert failed(api, url)["code"] == "BAD_INPUT"


def test_injected_internal_errors_next_n(api, emu, wav):
    url = api.upload(wav)
    emu.admin.fail_jobs(2)
    docs = [api.wait(api.create(url)) for _ in range(3)]
    assert [d["status"] for d in docs] == ["FAILED", "FAILED", "SUCCEEDED"]
    assert docs[0]["error"]["code"] == "INTERNAL_ERROR" and docs[0]["error"]["title"] == "Internal error"


def test_injected_errors_per_workflow_and_code(api, emu, wav):
    url = api.upload(wav)
    emu.admin.fail_jobs(5, code="TIMEOUT", workflows=[BEATS])
    assert api.wait(api.create(url, STEMS))["status"] == "SUCCEEDED"
    assert api.wait(api.create(url, BEATS))["error"]["code"] == "TIMEOUT"


def test_injected_error_rate_is_seeded(api, emu, wav):
    url = api.upload(wav)

    def outcome() -> list[bool]:
        emu.admin.set_faults(job_errors={"rate": 0.5, "seed": 3})
        ids = [api.create(url) for _ in range(20)]
        return [api.wait(i)["status"] == "FAILED" for i in ids]

    first = outcome()
    assert outcome() == first and 0 < sum(first) < 20


def test_delete_stops_a_queued_job(api, emu, wav):
    emu.admin.configure(manual_clock=True, queued_seconds=0.3, processing_seconds=0.1)
    url = api.upload(wav)
    job_id = api.create(url)
    assert api.delete(f"/job/{job_id}").status_code == 200
    emu.admin.advance_clock(1)  # past the job's QUEUED and STARTED time
    assert emu.admin.jobs() == []
    assert emu.admin.counters()["jobs_deleted"] == 1
    assert api.get(f"/job/{job_id}").status_code == 404


def test_admin_jobs_lists_every_app(api, other_api, emu, wav):
    url = api.upload(wav)
    a, b = api.create(url, metadata={"k": "v"}), other_api.create(url)
    jobs = emu.admin.jobs()
    assert [j["id"] for j in jobs] == [b, a]
    assert jobs[1]["metadata"] == {"k": "v"} and jobs[0]["app"] == "Other Application"
