"""Fidelity knobs: quotas, page-size cap, legacy prefix, manual clock (see emulator/FIDELITY.md)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from airflow_provider_musicai.testing import EmulatorError

pytestmark = pytest.mark.airflow_independent

STEMS = "music-ai/stems-vocals-accompaniment"


def wait_for(predicate: Any, timeout: float = 20.0) -> Any:
    """Poll ``predicate`` until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def statuses(api, ids):
    return [api.get(f"/job/{job_id}/status").json()["status"] for job_id in ids]


def test_max_concurrent_jobs_keeps_excess_jobs_queued_until_a_slot_frees(api, other_api, emu, wav):
    emu.admin.configure(max_concurrent_jobs=2, manual_clock=True)
    url = api.upload(wav)
    ids = [api.create(url) for _ in range(3)]
    other = other_api.create(other_api.upload(wav))
    emu.admin.advance_clock(0.05)
    assert statuses(api, ids) == ["STARTED", "STARTED", "QUEUED"]
    assert statuses(other_api, [other]) == ["STARTED"]  # the limit is per application
    emu.admin.advance_clock(0.1)
    wait_for(lambda: statuses(api, ids[:2]) == ["SUCCEEDED", "SUCCEEDED"])
    wait_for(lambda: statuses(api, ids[2:]) == ["STARTED"])
    emu.admin.advance_clock(0.1)
    assert api.wait(ids[2])["status"] == "SUCCEEDED"


def test_deleting_a_running_job_frees_its_slot(api, emu, wav):
    emu.admin.configure(max_concurrent_jobs=1, manual_clock=True)
    url = api.upload(wav)
    first, second = api.create(url), api.create(url)
    emu.admin.advance_clock(0.05)
    assert statuses(api, [first, second]) == ["STARTED", "QUEUED"]
    assert api.delete(f"/job/{first}").status_code == 200
    assert statuses(api, [second]) == ["STARTED"]


def test_raising_the_limit_admits_waiting_jobs(api, emu, wav):
    emu.admin.configure(max_concurrent_jobs=1, manual_clock=True)
    url = api.upload(wav)
    ids = [api.create(url) for _ in range(3)]
    emu.admin.advance_clock(0.05)
    assert statuses(api, ids) == ["STARTED", "QUEUED", "QUEUED"]
    emu.admin.configure(max_concurrent_jobs=0)
    assert statuses(api, ids) == ["STARTED", "STARTED", "STARTED"]


def test_max_page_size_clamps_silently_and_offsets_by_its_own_size(api, emu, wav):
    emu.admin.configure(max_page_size=2, manual_clock=True)
    url = api.upload(wav)
    ids = [api.create(url) for _ in range(5)][::-1]  # newest first
    first = api.get("/job", params={"size": 100})
    assert first.status_code == 200 and [j["id"] for j in first.json()] == ids[:2]
    second = api.get("/job", params={"size": 100, "page": 1}).json()
    assert [j["id"] for j in second] == ids[2:4]
    workflows = api.get("/workflow", params={"size": 100}).json()["workflows"]
    assert len(workflows) == 2


def test_workflow_shape_object_serves_the_older_id_and_name_form(api, emu, wav):
    stems = next(w for w in api.get("/workflow").json()["workflows"] if w["slug"] == STEMS)
    job_id = api.create(api.upload(wav))
    assert api.get(f"/job/{job_id}").json()["workflow"] == STEMS  # the default: the slug
    emu.admin.configure(workflow_shape="object")
    expected = {"id": stems["id"], "name": stems["name"]}
    assert api.get(f"/job/{job_id}").json()["workflow"] == expected
    listed = api.get("/job", params={"workflow": STEMS}).json()  # the filter still takes slugs
    assert [(j["id"], j["workflow"]) for j in listed] == [(job_id, expected)]
    with pytest.raises(EmulatorError, match="workflow_shape"):
        emu.admin.configure(workflow_shape="uuid")


def test_legacy_api_prefix_is_an_alias_of_v1(api, emu, wav):
    legacy = emu.base_url + "/api"
    headers = emu.headers()
    assert requests.get(legacy + "/application", headers=headers, timeout=10).json()["name"] == (
        "Default Application"
    )
    job_id = api.create(api.upload(wav))
    assert requests.get(f"{legacy}/job/{job_id}", headers=headers, timeout=10).json()["id"] == job_id
    assert requests.get(legacy + "/application", timeout=10).status_code == 401
    assert "/api/job" not in requests.get(emu.base_url + "/openapi.json", timeout=10).json()["paths"]


def test_manual_clock_stops_progress_until_advanced(api, emu, wav):
    emu.admin.configure(manual_clock=True, queued_seconds=30, processing_seconds=60)
    frozen_at = emu.admin.clock()["now"]
    job_id = api.create(api.upload(wav))
    assert statuses(api, [job_id]) == ["QUEUED"]
    # Real time passed (an upload, a job, HTTP round trips); emulated time did not.
    assert emu.admin.clock()["now"] == frozen_at
    emu.admin.advance_clock(29)
    assert statuses(api, [job_id]) == ["QUEUED"]
    emu.admin.advance_clock(1)
    doc = api.get(f"/job/{job_id}").json()
    assert doc["status"] == "STARTED" and doc["startedAt"] is not None
    emu.admin.advance_clock(60)
    done = api.wait(job_id)
    assert done["status"] == "SUCCEEDED"
    assert emu.admin.clock()["frozen"] is True


def test_advancing_the_clock_expires_signed_urls(api, emu):
    emu.admin.configure(manual_clock=True)
    urls = api.get("/upload").json()
    assert requests.put(urls["uploadUrl"], data=b"abc", timeout=10).status_code == 200
    emu.admin.advance_clock(emu.admin.config()["download_url_ttl_seconds"] + 1)
    response = requests.get(urls["downloadUrl"], timeout=10)
    assert response.status_code == 400 and "<Code>ExpiredToken</Code>" in response.text


def test_clock_advance_rejects_negative_seconds(emu):
    with pytest.raises(EmulatorError, match="seconds"):
        emu.admin.advance_clock(-1)


@pytest.mark.musicai_config(max_concurrent_jobs=3, manual_clock=True)
def test_musicai_config_marker_changes_config_for_one_test(musicai_emulator):
    config = musicai_emulator.admin.config()
    assert config["max_concurrent_jobs"] == 3 and config["manual_clock"] is True
    assert musicai_emulator.admin.clock()["frozen"] is True


def test_config_is_back_to_startup_in_the_next_test(musicai_emulator):
    config = musicai_emulator.admin.config()
    assert config["max_concurrent_jobs"] == 0 and config["manual_clock"] is False
    assert musicai_emulator.admin.clock()["frozen"] is False


def test_complete_job_now_skips_queueing_and_processing_time(api, emu, wav):
    emu.admin.configure(
        manual_clock=True, queued_seconds=3600, processing_seconds=3600, max_concurrent_jobs=1
    )
    url = api.upload(wav)
    first, second = api.create(url), api.create(url)
    emu.admin.complete_job(second)  # admitted now although the other job is due first
    assert api.wait(second)["status"] == "SUCCEEDED"
    assert statuses(api, [first]) == ["QUEUED"]
    emu.admin.advance_clock(3600)
    assert statuses(api, [first]) == ["STARTED"]
    emu.admin.complete_job(first)
    assert api.wait(first)["status"] == "SUCCEEDED"
    with pytest.raises(EmulatorError, match="404"):
        emu.admin.complete_job("0f0f0f0f-0000-4000-8000-000000000000")
