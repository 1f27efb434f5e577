"""The public API: every endpoint, its error cases, isolation between keys, listing and pagination."""

from __future__ import annotations

import re
import time
import uuid

import pytest
import requests

pytestmark = pytest.mark.airflow_independent

STEMS = "music-ai/stems-vocals-accompaniment"
TRANSCRIBE = "music-ai/transcribe-vocals"
BEATS = "music-ai/beats-chords-key"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
JOB_FIELDS = {
    "id",
    "app",
    "name",
    "batchName",
    "metadata",
    "workflow",
    "workflowParams",
    "status",
    "result",
    "error",
    "createdAt",
    "startedAt",
    "completedAt",
}


def assert_error(response, status, message=None):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"statusCode", "error", "message"}
    assert body["statusCode"] == status
    if message is not None:
        assert message in body["message"]


def test_application(api, other_api):
    first, second = api.get("/application"), other_api.get("/application")
    assert first.status_code == second.status_code == 200
    assert first.json()["name"] == "Default Application"
    assert second.json()["name"] == "Other Application"
    assert set(first.json()) == {"id", "name"}
    uuid.UUID(first.json()["id"])
    assert first.json()["id"] != second.json()["id"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/application"),
        ("GET", "/upload"),
        ("GET", "/job"),
        ("POST", "/job"),
        ("GET", "/workflow"),
        # Fixed ids: test ids must be the same in every pytest-xdist worker.
        ("GET", "/job/3f1c2a9e-5b7d-4e2a-9c1f-0a8b6d4e2c71"),
        ("GET", "/job/3f1c2a9e-5b7d-4e2a-9c1f-0a8b6d4e2c72/status"),
        ("DELETE", "/job/3f1c2a9e-5b7d-4e2a-9c1f-0a8b6d4e2c73"),
    ],
)
@pytest.mark.parametrize("key", [None, "wrong-key", "Bearer test-api-key", ""])
def test_missing_or_invalid_key_is_401(emu, method, path, key):
    headers = {} if key is None else {"Authorization": key}
    response = requests.request(method, emu.api_url + path, headers=headers, json={}, timeout=10)
    assert_error(response, 401)


def test_upload_urls(api, emu):
    urls = api.get("/upload").json()
    assert set(urls) == {"uploadUrl", "downloadUrl"}
    for url in urls.values():
        assert url.startswith(emu.storage_url + "/storage/")
        assert "X-Expires=" in url and "X-Signature=" in url
    assert not emu.storage_url.startswith(emu.base_url)


def test_create_get_status_delete(api, wav):
    url = api.upload(wav)
    job_id = api.create(url, metadata={"user": "u1", "n": 3, "ok": True, "f": 1.5})
    assert str(uuid.UUID(job_id)) == job_id and uuid.UUID(job_id).version == 4
    doc = api.get(f"/job/{job_id}").json()
    assert set(doc) == JOB_FIELDS
    assert doc["id"] == job_id and doc["app"] == "Default Application" and doc["name"] == "test job"
    assert doc["batchName"] is None and doc["workflow"] == STEMS
    assert doc["workflowParams"] == {"inputUrl": url}
    assert doc["metadata"] == {"user": "u1", "n": 3, "ok": True, "f": 1.5}
    assert doc["status"] == "QUEUED" and doc["result"] is None and doc["error"] is None
    assert ISO.match(doc["createdAt"]) and doc["startedAt"] is None and doc["completedAt"] is None
    status = api.get(f"/job/{job_id}/status").json()
    assert set(status) == {"id", "status"} and status["id"] == job_id
    final = api.wait(job_id)
    assert final["status"] == "SUCCEEDED"
    assert set(final["result"]) == {"vocals", "accompaniments"}
    assert ISO.match(final["startedAt"]) and ISO.match(final["completedAt"])
    assert final["createdAt"] <= final["startedAt"] <= final["completedAt"]
    deleted = api.delete(f"/job/{job_id}")
    assert deleted.status_code == 200 and deleted.json() == {"id": job_id}
    assert_error(api.get(f"/job/{job_id}"), 404, "Job not found")
    assert_error(api.get(f"/job/{job_id}/status"), 404)
    assert_error(api.delete(f"/job/{job_id}"), 404)


@pytest.mark.parametrize(
    "job_id", ["abc", "123", "2e35babc-91c4-4121-89f4-5a2acf956b2", "zz35babc-91c4-4121-89f4-5a2acf956b28"]
)
@pytest.mark.parametrize("suffix", ["", "/status"])
def test_malformed_job_id_is_400(api, job_id, suffix):
    assert_error(api.get(f"/job/{job_id}{suffix}"), 400, "Invalid job ID format")


def test_malformed_job_id_delete_is_400(api):
    assert_error(api.delete("/job/not-a-uuid"), 400, "Invalid job ID format")


def test_unknown_job_is_404(api):
    assert_error(api.get(f"/job/{uuid.uuid4()}"), 404, "Job not found")


def test_jobs_are_isolated_between_keys(api, other_api, wav):
    job_id = api.create(api.upload(wav))
    assert_error(other_api.get(f"/job/{job_id}"), 404)
    assert_error(other_api.get(f"/job/{job_id}/status"), 404)
    assert_error(other_api.delete(f"/job/{job_id}"), 404)
    assert other_api.get("/job").json() == []
    assert [j["id"] for j in api.get("/job").json()] == [job_id]
    assert api.get(f"/job/{job_id}").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "JSON object"),
        ("text", "JSON object"),
        (None, "JSON object"),
        ({"workflow": STEMS, "params": {}}, "name"),
        ({"name": "", "workflow": STEMS, "params": {}}, "name"),
        ({"name": 5, "workflow": STEMS, "params": {}}, "name"),
        ({"name": "n", "params": {}}, "workflow"),
        ({"name": "n", "workflow": 3, "params": {}}, "workflow"),
        ({"name": "n", "workflow": STEMS}, "params"),
        ({"name": "n", "workflow": STEMS, "params": []}, "params"),
        ({"name": "n", "workflow": STEMS, "params": {"inputUrl": "x"}, "metadata": []}, "metadata"),
        (
            {"name": "n", "workflow": STEMS, "params": {"inputUrl": "x"}, "metadata": {"a": {"b": 1}}},
            "metadata.a",
        ),
        ({"name": "n", "workflow": STEMS, "params": {"inputUrl": "x"}, "metadata": {"l": [1]}}, "metadata.l"),
        (
            {"name": "n", "workflow": STEMS, "params": {"inputUrl": "x"}, "metadata": {"z": None}},
            "metadata.z",
        ),
    ],
)
def test_create_job_invalid_fields_are_400(api, body, field):
    assert_error(api.post("/job", json=body), 400, field)


@pytest.mark.parametrize(
    "raw", [b"{", b"", b'{"name": NaN}', b'{"name": "n", "workflow": "w", "params": {"x": Infinity}}']
)
def test_create_job_invalid_json_is_400(api, raw):
    response = api.post("/job", data=raw, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "JSON object")


def test_unknown_workflow_is_404(api):
    response = api.post("/job", json={"name": "n", "workflow": "nope/nope", "params": {"inputUrl": "x"}})
    assert_error(response, 404, "Workflow not found")


@pytest.mark.parametrize(
    ("workflow", "params", "param"),
    [
        (STEMS, {}, "inputUrl"),
        (STEMS, {"inputUrl": 5}, "inputUrl"),
        (STEMS, {"inputUrl": ""}, "inputUrl"),
        (STEMS, {"inputUrl": "http://x", "extra": 1}, "extra"),
        (STEMS, {"inputUrl": "http://x", "language": "en"}, "language"),
        (TRANSCRIBE, {"inputUrl": "http://x", "language": "klingon"}, "language"),
        (TRANSCRIBE, {"inputUrl": "http://x", "language": 3}, "language"),
        (BEATS, {"input_url": "http://x"}, "input_url"),
    ],
)
def test_params_not_fitting_the_workflow_are_422(api, workflow, params, param):
    response = api.post("/job", json={"name": "n", "workflow": workflow, "params": params})
    assert_error(response, 422, f"'{param}'")


def test_workflows(api):
    response = api.get("/workflow")
    assert response.status_code == 200
    workflows = response.json()["workflows"]
    slugs = {w["slug"] for w in workflows}
    assert {STEMS, TRANSCRIBE, BEATS} <= slugs
    for w in workflows:
        assert set(w) == {"id", "name", "slug", "description", "createdAt", "updatedAt"}
        assert ISO.match(w["createdAt"]) and ISO.match(w["updatedAt"])
    created = [w["createdAt"] for w in workflows]
    assert created == sorted(created, reverse=True)
    page = api.get("/workflow", params={"page": 1, "size": 1}).json()["workflows"]
    assert page == workflows[1:2]
    assert api.get("/workflow", params={"page": 5}).json() == {"workflows": []}
    assert_error(api.get("/workflow", params={"size": 0}), 400, "size")
    assert_error(api.get("/workflow", params={"page": -1}), 400, "page")


def test_list_shapes_switchable(api, emu, wav):
    job_id = api.create(api.upload(wav))
    array = api.get("/job").json()
    assert isinstance(array, list) and [j["id"] for j in array] == [job_id]
    emu.admin.configure(list_shape="object")
    obj = api.get("/job").json()
    assert set(obj) == {"jobs"} and [j["id"] for j in obj["jobs"]] == [job_id]
    emu.admin.configure(list_shape="array")
    assert isinstance(api.get("/job").json(), list)


def test_list_newest_first_pagination_and_filters(api, emu, wav):
    url = api.upload(wav)
    emu.admin.configure(queued_seconds=60)
    ids = [api.create(url, STEMS if i % 2 else BEATS, batchName="b1" if i < 3 else None) for i in range(7)]
    listed = [j["id"] for j in api.get("/job").json()]
    assert listed == ids[::-1]
    pages = [[j["id"] for j in api.get("/job", params={"page": p, "size": 3}).json()] for p in range(4)]
    assert pages == [ids[6:3:-1], ids[3:0:-1], ids[0:1], []]
    stems = [j["id"] for j in api.get("/job", params={"workflow": STEMS}).json()]
    assert stems == [i for i in ids[::-1] if ids.index(i) % 2]
    both = api.get("/job", params=[("workflow", STEMS), ("workflow", BEATS)]).json()
    assert len(both) == 7
    batch = [j["id"] for j in api.get("/job", params={"batchName": "b1"}).json()]
    assert batch == ids[2::-1]
    assert api.get("/job", params={"status": "QUEUED"}).json().__len__() == 7
    assert api.get("/job", params=[("status", "SUCCEEDED"), ("status", "FAILED")]).json() == []
    assert len(api.get("/job", params=[("status", "STARTED"), ("status", "QUEUED")]).json()) == 7


def test_concurrent_creations_list_in_created_at_order(api, emu, wav):
    """Clients bound a newest-first walk by ``createdAt`` (the event feed stops at its cutoff): jobs
    created by concurrent requests must be listed in the order of their own stamps."""
    from concurrent.futures import ThreadPoolExecutor

    url = api.upload(wav)
    emu.admin.configure(queued_seconds=60)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: api.create(url, STEMS), range(240)))
    stamps = [job["createdAt"] for page in range(3) for job in api.get("/job", params={"page": page}).json()]
    assert len(stamps) == 240
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize(
    "params",
    [
        {"status": "DONE"},
        {"status": "queued"},
        {"size": 0},
        {"size": 101},
        {"size": "x"},
        {"page": -1},
        {"page": "a"},
    ],
)
def test_list_invalid_params_are_400(api, params):
    assert_error(api.get("/job", params=params), 400, next(iter(params)))


def test_list_defaults_to_100(api, emu, wav):
    emu.admin.configure(queued_seconds=60)
    url = api.upload(wav)
    for _ in range(105):
        api.create(url)
    assert len(api.get("/job").json()) == 100
    assert len(api.get("/job", params={"page": 1}).json()) == 5


def test_unknown_route_and_method(api, emu):
    assert_error(api.get("/nope"), 404)
    assert_error(api.session.put(emu.api_url + "/job"), 405)
    assert_error(requests.get(emu.base_url + "/storage/abc", timeout=10), 404)


def test_openapi_schema_documents_public_api_only(emu):
    schema = requests.get(emu.base_url + "/openapi.json", timeout=10).json()
    paths = schema["paths"]
    assert set(paths) == {
        "/v1/application",
        "/v1/upload",
        "/v1/job",
        "/v1/job/{id}",
        "/v1/job/{id}/status",
        "/v1/workflow",
    }
    assert set(paths["/v1/job/{id}"]) == {"get", "delete"}
    params = {p["name"]: p for p in paths["/v1/job"]["get"]["parameters"]}
    assert params["size"]["schema"]["maximum"] == 100 and params["size"]["schema"]["minimum"] == 1
    assert "requestBody" in paths["/v1/job"]["post"]
    assert {"400", "401", "404", "422"} <= set(paths["/v1/job"]["post"]["responses"])
    assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "Authorization"


def test_timestamps_are_utc_millis(api, wav):
    before = time.time()
    job_id = api.create(api.upload(wav))
    created = api.get(f"/job/{job_id}").json()["createdAt"]
    parsed = time.mktime(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert abs(parsed - before) < 5


def test_create_job_body_is_described_once_schema_and_validation_agree(api, emu):
    from airflow_provider_musicai.testing.emulator import bodies

    schema = requests.get(emu.base_url + "/openapi.json", timeout=10).json()
    published = schema["paths"]["/v1/job"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert published == bodies.schema(bodies.CREATE_JOB)
    assert set(published["properties"]) >= {"name", "workflow", "params", "metadata", "copyResultsTo"}
    for field in published["required"]:
        body = {"name": "n", "workflow": STEMS, "params": {"inputUrl": "x"}}
        del body[field]
        answer = api.post("/job", json=body)
        assert answer.status_code == 400 and answer.json() == {
            "statusCode": 400, "error": "Bad Request", "message": f"Missing required field '{field}'.",
        }  # fmt: skip
