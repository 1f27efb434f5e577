"""``copyResultsTo``: the emulator PUTs each named output to its URL, as the service does."""

from __future__ import annotations

import pytest
import requests

from tests.helpers.hostile import HostileServer, Reply, Request

pytestmark = pytest.mark.airflow_independent

STEMS = "music-ai/stems-vocals-accompaniment"
BEATS = "music-ai/beats-chords-key"


def create(api, url, copy_to, workflow=STEMS):
    body = {"name": "n", "workflow": workflow, "params": {"inputUrl": url}, "copyResultsTo": copy_to}
    return api.post("/job", json=body)


def test_outputs_are_put_to_their_urls_and_reported_as_custom_storage(api, emu, wav):
    def answer(request: Request) -> Reply:
        return Reply(200)

    with HostileServer(answer) as server:
        url = api.upload(wav)
        response = create(api, url, {"vocals": server.url("/bucket/vocals.wav?sig=1")})
        doc = api.wait(response.json()["id"])
        assert doc["status"] == "SUCCEEDED", doc
        assert doc["result"]["vocals"] == "[custom storage]"
        assert doc["result"]["accompaniments"].startswith(emu.storage_url)
        (put,) = server.requests_to("PUT", "/bucket/vocals.wav")
        assert put.body[:4] == b"RIFF" and put.query == {"sig": ["1"]}
        assert put.headers["content-length"] == str(len(put.body))
        assert "authorization" not in put.headers and emu.api_key.encode() not in put.body


def test_value_outputs_are_copied_as_text(api, emu, wav):
    with HostileServer(lambda request: Reply(200)) as server:
        doc = api.wait(create(api, api.upload(wav), {"bpm": server.url("/bpm")}, BEATS).json()["id"])
        (put,) = server.requests_to("PUT", "/bpm")
        assert doc["result"]["bpm"] == "[custom storage]"
        assert float(put.body.decode()) > 0


def test_an_emulator_upload_url_is_a_valid_target(api, emu, wav):
    target = api.get("/upload").json()
    doc = api.wait(create(api, api.upload(wav), {"vocals": target["uploadUrl"]}).json()["id"])
    assert doc["result"]["vocals"] == "[custom storage]"
    assert requests.get(target["downloadUrl"], timeout=10).content[:4] == b"RIFF"


@pytest.mark.parametrize("status", [403, 500])
def test_a_refused_put_fails_the_job_internal_error(api, emu, wav, status):
    with HostileServer(lambda request: Reply(status)) as server:
        doc = api.wait(
            create(api, api.upload(wav), {"vocals": server.url("/x?X-Goog-Signature=s3cret")}).json()["id"]
        )
    assert doc["status"] == "FAILED" and doc["error"]["code"] == "INTERNAL_ERROR"
    assert "'vocals'" in doc["error"]["message"] and "s3cret" not in doc["error"]["message"]


def test_a_non_loopback_target_fails_the_job_without_connecting(api, emu, wav):
    doc = api.wait(
        create(api, api.upload(wav), {"vocals": "https://bucket.example.com/v?sig=s3cret"}).json()["id"]
    )
    assert doc["error"]["code"] == "INTERNAL_ERROR" and "s3cret" not in doc["error"]["message"]


@pytest.mark.parametrize("copy_to", [[], {"vocals": 3}, {"vocals": "ftp://x/y"}, "https://x/y"])
def test_malformed_copy_results_to_is_400(api, wav, copy_to):
    assert create(api, "http://127.0.0.1:1/x", copy_to).status_code == 400


def test_unknown_output_names_are_rejected_or_ignored_by_knob(api, emu, wav):
    url = api.upload(wav)
    refused = create(api, url, {"drums": "http://127.0.0.1:1/d"})
    assert refused.status_code == 422 and "drums" in refused.json()["message"]
    emu.admin.configure(copy_results_unknown_outputs="ignore")
    doc = api.wait(create(api, url, {"drums": "http://127.0.0.1:1/d"}).json()["id"])
    assert doc["status"] == "SUCCEEDED" and "drums" not in doc["result"]
