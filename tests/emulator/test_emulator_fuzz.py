"""Property-based checks: arbitrary job bodies and list queries never crash the emulator."""

from __future__ import annotations

import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.airflow_independent

STEMS = "music-ai/stems-vocals-accompaniment"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)
job_bodies = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values | st.text(max_size=30),
        "workflow": json_values | st.sampled_from([STEMS, "music-ai/transcribe-vocals", "nope"]),
        "params": json_values
        | st.fixed_dictionaries(
            {"inputUrl": json_values}, optional={"language": json_values, "x": json_values}
        ),
        "metadata": json_values | st.dictionaries(st.text(max_size=10), json_values, max_size=4),
        "batchName": json_values,
    },
)


def check_answer(response: requests.Response, allowed: set[int]) -> None:
    assert response.status_code in allowed, response.text
    body = response.json()
    if response.status_code != 200:
        assert set(body) == {"statusCode", "error", "message"} and body["statusCode"] == response.status_code


def test_create_job_never_crashes(emu):
    session = requests.Session()
    session.headers["Authorization"] = emu.api_key
    emu.admin.configure(queued_seconds=3600)

    @SETTINGS
    @given(body=job_bodies | json_values)
    def run(body: object) -> None:
        response = session.post(emu.api_url + "/job", data=json.dumps(body), timeout=10)
        check_answer(response, {200, 400, 404, 422})

    run()
    assert emu.admin.counters()["statuses"].get("500") is None


def test_list_queries_never_crash(emu):
    session = requests.Session()
    session.headers["Authorization"] = emu.api_key
    values = st.text(max_size=12) | st.integers(min_value=-(10**30), max_value=10**30).map(str)
    keys = st.sampled_from(["status", "workflow", "batchName", "page", "size", "other"])

    @SETTINGS
    @given(params=st.lists(st.tuples(keys, values), max_size=5), path=st.sampled_from(["/job", "/workflow"]))
    def run(params: list[tuple[str, str]], path: str) -> None:
        check_answer(session.get(emu.api_url + path, params=params, timeout=10), {200, 400})

    run()


def test_job_paths_never_crash(emu):
    session = requests.Session()
    session.headers["Authorization"] = emu.api_key

    @SETTINGS
    @given(job_id=st.text(min_size=1, max_size=40).filter(lambda s: "/" not in s and s not in (".", "..")))
    def run(job_id: str) -> None:
        for method in ("GET", "DELETE"):
            response = session.request(
                method, f"{emu.api_url}/job/{requests.utils.quote(job_id, safe='')}", timeout=10
            )
            check_answer(response, {400, 404})

    run()
