"""HTTP fault injection seen from plain clients, with both uvicorn HTTP implementations; counters."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests

from airflow_provider_musicai.testing import EmulatorServer
from tests.helpers.reliability import wait_until

pytestmark = pytest.mark.airflow_independent

STEMS = "music-ai/stems-vocals-accompaniment"


@pytest.fixture(scope="module")
def h11_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(http="h11") as server:
        yield server


@pytest.fixture(params=["httptools", "h11"])
def target(request: pytest.FixtureRequest, musicai_emulator_server: EmulatorServer) -> EmulatorServer:
    """The session emulator (httptools) or an h11 one, reset with fast timings."""
    server = (
        musicai_emulator_server if request.param == "httptools" else request.getfixturevalue("h11_server")
    )
    server.admin.reset(config=True)
    server.admin.configure(queued_seconds=0.05, processing_seconds=0.1)
    return server


def session(server: EmulatorServer) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.headers["Authorization"] = server.api_key
    return s


def job_body(url: str = "http://127.0.0.1:9/x.wav") -> dict[str, object]:
    return {"name": "fault", "workflow": STEMS, "params": {"inputUrl": url}}


@pytest.mark.parametrize("kind", ["429", "500", "503"])
def test_json_error_faults(target, kind):
    target.admin.set_faults(script=[{"match": "GET /v1/application", "fault": kind, "retry_after": 7}])
    s = session(target)
    response = s.get(target.api_url + "/application", timeout=10)
    assert response.status_code == int(kind)
    assert response.json()["statusCode"] == int(kind) and response.json()["message"]
    if kind in ("429", "503"):
        assert response.headers["Retry-After"] == "7"
    assert s.get(target.api_url + "/application", timeout=10).status_code == 200


def test_502_is_an_html_page(target):
    target.admin.script_faults({"match": "GET /v1/workflow", "fault": "502"})
    response = requests.get(target.api_url + "/workflow", headers=target.headers(), timeout=10)
    assert response.status_code == 502 and response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<html>") and "502 Bad Gateway" in response.text


def test_drop_closes_without_answer_and_does_not_process(target):
    target.admin.script_faults({"match": "POST /v1/job", "fault": "drop"})
    with pytest.raises(requests.exceptions.ConnectionError):
        session(target).post(target.api_url + "/job", json=job_body(), timeout=10)
    assert target.admin.jobs() == []
    response = session(target).post(target.api_url + "/job", json=job_body(), timeout=10)
    assert response.status_code == 200 and len(target.admin.jobs()) == 1


def test_drop_after_processes_then_loses_the_response(target):
    target.admin.script_faults({"match": "POST /v1/job", "fault": "drop_after"})
    with pytest.raises(requests.exceptions.ConnectionError):
        session(target).post(target.api_url + "/job", json=job_body(), timeout=10)
    jobs = target.admin.jobs()
    assert len(jobs) == 1 and jobs[0]["name"] == "fault"
    counters = target.admin.counters()
    assert counters["jobs_created"] == 1 and counters["faults"] == {"drop_after": 1}


def test_slow_delays_past_the_read_timeout(target):
    target.admin.script_faults({"match": "GET /v1/application", "fault": "slow", "seconds": 1.0})
    s = session(target)
    with pytest.raises(requests.exceptions.ReadTimeout):
        s.get(target.api_url + "/application", timeout=(5, 0.3))
    target.admin.script_faults({"match": "GET /v1/application", "fault": "slow", "seconds": 0.3})
    start = time.monotonic()
    response = session(target).get(target.api_url + "/application", timeout=10)
    assert response.status_code == 200 and time.monotonic() - start >= 0.3
    # A request still being answered when the counters are reset is not counted afterwards.
    target.admin.script_faults({"match": "GET /v1/application", "fault": "slow", "seconds": 1.0})
    with ThreadPoolExecutor(1) as pool:
        late = pool.submit(session(target).get, target.api_url + "/application", timeout=10)
        wait_until(
            "the third request to arrive",
            lambda: target.admin.counters()["requests"].get("GET /v1/application") == 3,
        )
        target.admin.reset()
        assert late.result().status_code == 200
    assert target.admin.counters()["statuses"] == {}, "a late answer to a request older than the reset"


def test_truncate_sends_a_short_body(target):
    target.admin.script_faults({"match": "GET /v1/workflow", "fault": "truncate"})
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        session(target).get(target.api_url + "/workflow", timeout=10)
    parts = urlsplit(target.api_url)
    target.admin.script_faults({"match": "GET /v1/workflow", "fault": "truncate"})
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            f"GET /v1/workflow HTTP/1.1\r\nHost: x\r\nAuthorization: {target.api_key}\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(
        next(
            line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
    )
    assert head.startswith(b"HTTP/1.1 200") and 0 < len(body) < length
    assert body.startswith(b'{"workflows"')


def test_storage_faults(target):
    urls = session(target).get(target.api_url + "/upload", timeout=10).json()
    target.admin.script_faults(
        {"match": "PUT /storage/*", "fault": "drop_after"}, {"match": "GET /storage/*", "fault": "truncate"}
    )
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.put(urls["uploadUrl"], data=b"x" * 100000, timeout=10)
    assert target.admin.storage()["objects"] == 1
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(urls["downloadUrl"], timeout=10).content  # noqa: B018
    assert requests.get(urls["downloadUrl"], timeout=10).content == b"x" * 100000


def test_script_count_skip_and_patterns(target):
    target.admin.set_faults(
        script=[{"match": "GET /v1/job/{id}/status", "fault": "503", "count": 2, "skip": 1}]
    )
    s = session(target)
    job_id = s.post(target.api_url + "/job", json=job_body(), timeout=10).json()["id"]
    codes = [s.get(f"{target.api_url}/job/{job_id}/status", timeout=10).status_code for _ in range(4)]
    assert codes == [200, 503, 503, 200]
    assert s.get(f"{target.api_url}/job/{job_id}", timeout=10).status_code == 200
    assert target.admin.faults()["script"] == []
    target.admin.script_faults({"match": "/v1/*", "fault": "500", "count": 3})
    assert s.get(target.api_url + "/upload", timeout=10).status_code == 500
    assert s.delete(f"{target.api_url}/job/{job_id}", timeout=10).status_code == 500
    assert target.admin.faults()["script"][0]["count"] == 1


def test_rate_faults_are_seeded_and_scoped(target):
    def run() -> list[int]:
        target.admin.set_faults(
            rate=0.5, weights={"500": 1, "503": 1}, seed=11, scope="api", match=["GET /v1/workflow"]
        )
        s = session(target)
        codes = [s.get(target.api_url + "/workflow", timeout=10).status_code for _ in range(30)]
        assert all(s.get(target.api_url + "/application", timeout=10).status_code == 200 for _ in range(5))
        return codes

    first = run()
    assert run() == first
    assert set(first) == {200, 500, 503}
    urls = session(target).get(target.api_url + "/upload", timeout=10).json()
    assert requests.put(urls["uploadUrl"], data=b"x", timeout=10).status_code == 200


def test_rate_all_kinds_survive(target):
    target.admin.set_faults(rate=1.0, seed=1, scope="both")
    s = session(target)
    outcomes = set()
    for _ in range(40):
        try:
            outcomes.add(s.get(target.api_url + "/workflow", timeout=5).status_code)
        except requests.exceptions.RequestException as exc:
            outcomes.add(type(exc).__name__)
    target.admin.clear_faults()
    assert session(target).get(target.api_url + "/workflow", timeout=10).status_code == 200
    assert {429, 500, 502, 503} <= outcomes and "ConnectionError" in outcomes
    assert sum(target.admin.counters()["faults"].values()) == 40


@pytest.mark.parametrize(
    "plan",
    [
        {"rate": 2},
        {"script": [{"fault": "nope"}]},
        {"scope": "everything"},
        {"bogus": 1},
        {"job_errors": {"code": "OOPS"}},
        {"weights": {"418": 1}},
    ],
)
def test_invalid_fault_plans_are_400(target, plan):
    response = requests.post(target.base_url + "/__emulator__/faults", json=plan, timeout=10)
    assert response.status_code == 400 and response.json()["message"]


def test_admin_api_and_schema_are_never_faulted(target):
    target.admin.set_faults(rate=1.0, weights={"drop": 1}, scope="both")
    assert requests.get(target.base_url + "/openapi.json", timeout=10).status_code == 200
    assert target.admin.counters()["faults"] == {}
    target.admin.clear_faults()


def test_counters(target):
    s = session(target)
    s.get(target.api_url + "/application", timeout=10)
    s.get(target.api_url + "/application", timeout=10)
    job_id = s.post(target.api_url + "/job", json=job_body(), timeout=10).json()["id"]
    s.get(f"{target.api_url}/job/{job_id}", timeout=10)
    s.get(f"{target.api_url}/job/{job_id}/status", timeout=10)
    s.delete(f"{target.api_url}/job/{job_id}", timeout=10)
    s.get(f"{target.api_url}/job/{job_id}", timeout=10)
    requests.get(target.api_url + "/application", headers={"Authorization": target.other_api_key}, timeout=10)
    requests.post(
        target.api_url + "/job", json=job_body(), headers={"Authorization": target.other_api_key}, timeout=10
    )
    urls = s.get(target.api_url + "/upload", timeout=10).json()
    requests.put(urls["uploadUrl"], data=b"12345", timeout=10)
    c = target.admin.counters()
    assert c["requests"] == {
        "GET /v1/application": 3,
        "POST /v1/job": 2,
        "GET /v1/job/{id}": 2,
        "GET /v1/job/{id}/status": 1,
        "DELETE /v1/job/{id}": 1,
        "GET /v1/upload": 1,
        "PUT /storage/{key}": 1,
    }
    assert c["endpoint_statuses"]["GET /v1/job/{id}"] == {"200": 1, "404": 1}
    assert c["statuses"] == {"200": 10, "404": 1}
    assert c["jobs_created"] == 2
    assert c["jobs_created_by_app"] == {"Default Application": 1, "Other Application": 1}
    assert c["jobs_deleted"] == 1 and c["bytes_stored"] == 5 and c["objects_stored"] == 1
    connections = c["connections"]
    assert connections["api"]["opened"] == 3, "one keep-alive session plus two one-off requests"
    assert connections["storage"]["opened"] == 1
    assert connections["api"]["max_open"] >= 1
    assert c["connections_opened"] == 4
