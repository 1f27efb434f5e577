"""Secrets: after every example DAG run (calm, under faults, with a failing track, a sensor on a job
made elsewhere), the API key and the signature of every signed URL the API handed out are looked
for in the task logs (DEBUG level, HTTP libraries included), exception texts, and every row of
Airflow's database (XCom values, rendered template fields, trigger rows and kwargs, events stored
on task instances, DAG run conf...): zero hits. The key reaches no host but the API: the
emulator's storage counts every request carrying it, and a third-party host behind a redirect
records what it is sent.

Run: ``pytest -m secrets``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from airflow_provider_musicai.exceptions import MusicAIError
from airflow_provider_musicai.hooks.musicai import MusicAIHook
from airflow_provider_musicai.triggers.musicai import MusicAIJobTrigger
from tests.helpers.airflow import load_example, run_dag, task_states, xcom_value
from tests.helpers.audio import wav_bytes
from tests.helpers.hooks import set_connection
from tests.helpers.hostile import HostileServer, Reply
from tests.helpers.reliability import all_rows_text, record, secret_hits, signatures_in

pytestmark = [pytest.mark.secrets, pytest.mark.usefixtures("airflow_db")]

STEMS = "music-ai/stems-vocals-accompaniment"
CONNECTION = {"timeout": 2, "max_retries": 6, "retry_backoff": 0.02, "retry_max_wait": 0.2}
FAULTS = {
    "rate": 0.2,
    "scope": "both",
    "seed": 7,
    "weights": dict.fromkeys(["429", "500", "502", "503", "drop", "drop_after", "truncate"], 1),
    "script": [{"match": "POST /v1/job", "fault": "drop_after"}],
}
#: A signed URL logged on purpose before each run: the scan must find it, or it sees nothing.
CANARY = "http://127.0.0.1:9/storage/canary?X-Expires=1&X-Signature=" + "c" * 64
SCANNED: dict[str, Any] = {"runs": 0, "log_bytes": 0, "database_bytes": 0, "signatures": 0, "hits": 0}


def no_retry_delay(dag: Any) -> Any:
    for task in dag.tasks:
        task.retry_delay = timedelta(0)
    return dag


class Scanner:
    """Runs a DAG with everything logged at DEBUG, then scans every place a secret could end up."""

    def __init__(self, emulator: Any, spy: Any, capfd: pytest.CaptureFixture[str], caplog: Any) -> None:
        self.emulator, self.spy, self.capfd, self.caplog = emulator, spy, capfd, caplog

    def run(self, name: str, dag: Any, conf: dict[str, Any]) -> Any:
        self.capfd.readouterr()
        self.caplog.clear()
        logging.getLogger("airflow.task").warning("canary %s", CANARY)
        dag_run = run_dag(no_retry_delay(dag), conf)
        self.check(name)
        return dag_run

    def logs(self) -> str:
        out, err = self.capfd.readouterr()
        files = Path(os.environ["AIRFLOW_HOME"], "logs")
        on_disk = [p.read_text(errors="replace") for p in files.rglob("*") if p.is_file()]
        return "\n".join([out, err, self.caplog.text, *on_disk])

    def check(self, name: str, extra_text: str = "") -> None:
        logs = self.logs()
        assert "c" * 64 in logs, f"{name}: the canary was not captured: the log scan would see nothing"
        rows = all_rows_text()
        secrets = {self.emulator.api_key, self.emulator.other_api_key, *self.spy.signatures}
        assert self.spy.signatures, "no signed URL was handed out: nothing was checked"
        hits = {
            "task logs": secret_hits(logs.replace("c" * 64, ""), secrets),
            "database rows": secret_hits(rows, secrets),
            "exception texts": secret_hits(extra_text, secrets),
        }
        assert hits == {"task logs": [], "database rows": [], "exception texts": []}, (name, hits)
        assert self.emulator.admin.counters()["credential_leaks"] == 0, name
        SCANNED["runs"] += 1
        SCANNED["log_bytes"] += len(logs)
        SCANNED["database_bytes"] += len(rows)
        SCANNED["signatures"] = len(self.spy.signatures)
        record("secrets", "scanned", dict(SCANNED))


@pytest.fixture
def scanner(
    emulator: Any,
    connect: Any,
    spy: Any,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> Scanner:
    emulator.admin.configure(queued_seconds=0.2, processing_seconds=0.3)
    connect(**CONNECTION)
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "httpx", "httpx2", "httpcore", "httpcore2", "airflow_provider_musicai"):
        caplog.set_level(logging.DEBUG, logger=name)
    return Scanner(emulator, spy, capfd, caplog)


def test_chain_calm_and_under_faults(scanner: Scanner, emulator: Any, tmp_path: Path) -> None:
    dag_run = scanner.run("chain", load_example("example_musicai_chain"), {"output_dir": str(tmp_path / "a")})
    assert set(task_states(dag_run).values()) == {"success"}
    stems = xcom_value(dag_run, "separate_stems")
    assert stems["result"]["vocals"].startswith("musicai-result://")

    emulator.admin.set_faults(FAULTS)
    dag_run = scanner.run(
        "chain under faults", load_example("example_musicai_chain"), {"output_dir": str(tmp_path / "b")}
    )
    emulator.admin.clear_faults()
    assert set(task_states(dag_run).values()) == {"success"}
    assert emulator.admin.counters()["faults_total"] > 0


def test_catalog_with_a_failing_track(scanner: Scanner, emulator: Any, tmp_path: Path) -> None:
    conf = {
        "catalog": f"file://{tmp_path}/catalog",
        "output": f"file://{tmp_path}/results",
        "include_broken_track": True,
    }
    dag_run = scanner.run("catalog", load_example("example_musicai_catalog"), conf)
    states = task_states(dag_run)
    assert "failed" in states.values() and states["report"] == "failed"  # the broken track failed


def test_sensor_on_jobs_made_elsewhere(scanner: Scanner, emulator: Any, tmp_path: Path) -> None:
    hook = MusicAIHook()
    source = tmp_path / "in.wav"
    source.write_bytes(wav_bytes())
    url = hook.upload_file(source)
    good = hook.create_job("elsewhere", STEMS, {"inputUrl": url})
    dag_run = scanner.run("sensor", load_example("example_musicai_sensor"), {"job_id": good})
    assert set(task_states(dag_run).values()) == {"success"}

    emulator.admin.fail_jobs(1, code="BAD_INPUT")
    bad = hook.create_job("fails", STEMS, {"inputUrl": url})
    dag_run = scanner.run("sensor on a FAILED job", load_example("example_musicai_sensor"), {"job_id": bad})
    assert task_states(dag_run)["wait_for_job"] == "failed"
    # The trigger as Airflow stores it: plain kwargs, no secret.
    serialized = json.dumps(MusicAIJobTrigger(job_id=good, workflow=STEMS).serialize())
    scanner.check("serialized trigger", serialized)
    hook.close()


def test_exception_texts_of_storage_failures(scanner: Scanner, emulator: Any, tmp_path: Path) -> None:
    """Failures whose cause is a signed URL: the text Airflow logs (traceback with its chain), the
    repr and the pickle (how errors cross processes) name the object, never its signature."""
    hook = MusicAIHook()
    source = tmp_path / "in.wav"
    source.write_bytes(wav_bytes())
    job = hook.wait_for_job(
        hook.create_job("x", STEMS, {"inputUrl": hook.upload_file(source)}), poll_interval=0.1
    )
    failures = {
        "upload refused (expired URL)": (
            {"upload_url_ttl_seconds": 0},
            None,
            lambda: hook.upload_file(source),
        ),
        "upload: storage 503 for good": (
            {},
            {"script": [{"match": "PUT /storage/*", "fault": "503", "count": 50}], "scope": "storage"},
            lambda: hook.upload_file(source),
        ),
        "download truncated for good": (
            {},
            {"script": [{"match": "GET /storage/*", "fault": "truncate", "count": 50}], "scope": "storage"},
            lambda: hook.download_results(job, tmp_path / "out"),
        ),
        "download dropped for good": (
            {},
            {"script": [{"match": "GET /storage/*", "fault": "drop", "count": 50}], "scope": "storage"},
            lambda: hook.download_results(job, tmp_path / "out"),
        ),
    }
    texts = []
    for name, (config, faults, action) in failures.items():
        if config:
            emulator.admin.configure(**config)
        if faults:
            emulator.admin.set_faults(faults)
        with pytest.raises(MusicAIError) as caught:
            action()
        emulator.admin.clear_faults()
        emulator.admin.configure(upload_url_ttl_seconds=3600)
        error = caught.value
        text = "".join(traceback.format_exception(error))
        texts.append(f"{name}: {text} {error!r} {pickle.dumps(error)!r}")
        assert "/storage/" in text, f"{name}: the error should name the object: {text}"
    logging.getLogger("airflow.task").warning("canary %s", CANARY)
    scanner.check("exception texts", "\n".join(texts))
    hook.close()


def test_the_key_reaches_no_other_host(monkeypatch: pytest.MonkeyPatch, emulator: Any) -> None:
    """An API that redirects to another origin (a compromised proxy, a misconfigured gateway):
    the third-party host gets the request without the key, from requests and from httpx2."""
    key = "key-that-must-stay-home-0123456789"
    elsewhere = Reply(200, json_body={"id": "app", "name": "elsewhere"})
    with (
        HostileServer(lambda request: elsewhere) as third_party,
        HostileServer(lambda request: Reply(307, headers={"location": third_party.url(request.path)})) as api,
    ):
        set_connection(monkeypatch, "musicai_redirected", api, key=key)
        hook = MusicAIHook("musicai_redirected")
        assert hook.get_application()["name"] == "elsewhere"
        assert asyncio.run(hook.aget_application())["name"] == "elsewhere"
    seen = [
        f"{r.method} {r.path}?{urlencode(r.query, doseq=True)}\n{r.headers}" for r in third_party.requests
    ]
    assert len(seen) == 2
    assert secret_hits("\n".join(seen), {key}) == []
    assert not signatures_in("\n".join(seen))
    record("secrets", "third_party_requests_without_the_key", len(seen))
