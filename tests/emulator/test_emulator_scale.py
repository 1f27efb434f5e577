"""Scale: 1,000 jobs created, processed and listed; 200 concurrent connections."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

pytestmark = pytest.mark.airflow_independent

STEMS = "music-ai/stems-vocals-accompaniment"


def test_thousand_jobs_created_processed_and_listed(api, emu, wav_factory):
    url = api.upload(wav_factory(seconds=0.02))
    local = threading.local()

    def create(i: int) -> str:
        if not hasattr(local, "s"):
            local.s = requests.Session()
            local.s.headers["Authorization"] = emu.api_key
        body = {"name": f"job {i}", "workflow": STEMS, "params": {"inputUrl": url}, "metadata": {"i": i}}
        response = local.s.post(emu.api_url + "/job", json=body, timeout=30)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(create, range(1000)))
    assert len(set(ids)) == 1000
    listed = [j for page in range(10) for j in api.get("/job", params={"page": page, "size": 100}).json()]
    assert {j["id"] for j in listed} == set(ids)
    created = [j["createdAt"] for j in listed]
    assert created == sorted(created, reverse=True)
    assert api.get("/job", params={"page": 10}).json() == []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = sum(len(api.get("/job", params={"page": p, "status": "SUCCEEDED"}).json()) for p in range(10))
        if done == 1000:
            break
        time.sleep(0.2)
    assert done == 1000
    assert emu.admin.counters()["jobs_created"] == 1000


def test_two_hundred_concurrent_connections(api, emu, wav):
    job_id = api.create(api.upload(wav))
    barrier = threading.Barrier(200)

    def hit(i: int) -> int:
        with requests.Session() as s:
            s.headers["Authorization"] = emu.api_key
            barrier.wait(30)
            codes = [s.get(f"{emu.api_url}/job/{job_id}/status", timeout=30).status_code]
            body = {"name": f"c{i}", "workflow": STEMS, "params": {"inputUrl": "http://127.0.0.1:9/x.wav"}}
            codes.append(s.post(emu.api_url + "/job", json=body, timeout=30).status_code)
            codes.append(s.get(emu.api_url + "/job", params={"size": 5}, timeout=30).status_code)
            return max(codes)

    with ThreadPoolExecutor(200) as pool:
        assert set(pool.map(hit, range(200))) == {200}
    counters = emu.admin.counters()
    assert counters["jobs_created"] == 201
    assert counters["connections"]["api"]["max_open"] >= 50
