"""OpenLineage events a real DAG run emits (upload -> job -> download on the emulator), collected by
the OpenLineage provider's listener through openlineage-python's file transport."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.airflow import load_dag_file, run_dag, task_states, xcom_value
from tests.helpers.audio import write_wav

pytest.importorskip("airflow.providers.openlineage.plugins.listener")

DAGS = Path(__file__).resolve().parent / "dags" / "musicai_lineage_dags.py"
STEMS = "music-ai/stems-vocals-accompaniment"


def _clear_openlineage_conf() -> None:
    """The provider caches each ``[openlineage]`` option for the life of the process."""
    from airflow.providers.openlineage import conf

    for value in vars(conf).values():
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()


def _listener_managers() -> list[Any]:
    """The listener managers a ``dag.test()`` task calls: the Task SDK's (Airflow 3) and the core's."""
    from airflow.listeners.listener import get_listener_manager

    managers = [get_listener_manager()]
    try:
        from airflow.sdk.listener import get_listener_manager as get_sdk_listener_manager
    except ImportError:  # Airflow 2: one manager
        return managers
    return [*managers, get_sdk_listener_manager()]


@pytest.fixture
def openlineage_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], list[Any]]]:
    """Enable OpenLineage with a file transport for one test; returns a reader of the emitted events.

    Emission runs in a thread the task waits for (``execute_in_thread``) rather than a fork of the
    test process. A fresh listener (with its own client, built from this configuration) is registered
    with the listener managers as the provider's plugin registers its own; the environment, the
    provider's cached options and the listener managers are restored afterwards.
    """
    from airflow.providers.openlineage.plugins.listener import OpenLineageListener

    log = tmp_path / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(log), "append": True}
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps(transport))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "musicai-tests")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD", "True")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__EXECUTION_TIMEOUT", "120")
    for name in ("OPENLINEAGE_DISABLED", "OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    _clear_openlineage_conf()
    listener = OpenLineageListener()
    # The managers integrate plugins when first built: the provider's plugin may have registered
    # its own listener (if OpenLineage was enabled then). Replace it, so each event is emitted once,
    # through a client built from this configuration.
    replaced: list[tuple[Any, Any]] = []
    for manager in _listener_managers():
        for plugin in manager.pm.get_plugins():
            if isinstance(plugin, OpenLineageListener):
                manager.pm.unregister(plugin)
                replaced.append((manager, plugin))
        manager.add_listener(listener)

    def read() -> list[Any]:
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    try:
        yield read
    finally:
        for manager in _listener_managers():
            if manager.pm.is_registered(listener):
                manager.pm.unregister(listener)
        for manager, plugin in replaced:
            manager.add_listener(plugin)
        monkeypatch.undo()
        _clear_openlineage_conf()


def _by_task(events: list[Any], dag_id: str) -> dict[str, list[Any]]:
    """``{task_id: [event, ...]}`` of task-level events (job name ``dag_id.task_id``)."""
    tasks: dict[str, list[Any]] = {}
    for event in events:
        name = event["job"]["name"]
        if name.startswith(f"{dag_id}."):
            tasks.setdefault(name.removeprefix(f"{dag_id}."), []).append(event)
    return tasks


def _datasets(event: Any, side: str) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in event[side]]


@pytest.mark.usefixtures("airflow_db")
def test_a_dag_run_emits_complete_events_with_datasets_and_the_job_never_a_secret(
    musicai: Any, hook: Any, openlineage_events: Callable[[], list[Any]], tmp_path: Path
) -> None:
    track = write_wav(tmp_path / "track.wav")
    out = tmp_path / "out"
    dag = load_dag_file(DAGS).openlineage
    dag_run = run_dag(dag, {"source": str(track), "output_dir": str(out)})
    assert set(task_states(dag_run).values()) == {"success"}, task_states(dag_run)
    job_id = xcom_value(dag_run, "stems", key="job_id")
    files = xcom_value(dag_run, "download")

    events = openlineage_events()
    tasks = _by_task(events, dag.dag_id)
    complete = {
        task: [e for e in task_events if e["eventType"] == "COMPLETE"] for task, task_events in tasks.items()
    }
    assert {task: len(found) for task, found in complete.items()} == {"upload": 1, "stems": 1, "download": 1}
    (upload,), (stems,), (download,) = complete["upload"], complete["stems"], complete["download"]

    assert _datasets(upload, "inputs") == [("file", str(track))] and upload["outputs"] == []
    assert "musicai" not in upload["run"]["facets"]
    # A sealed upload names no dataset, so the provider falls back to hook lineage: a worker runs
    # each task in its own process, but dag.test() runs them all in one, whose collector still holds
    # the upload's input. Either way, nothing but that file.
    assert _datasets(stems, "inputs") in ([], [("file", str(track))]) and stems["outputs"] == []
    facet = stems["run"]["facets"]["musicai"]
    assert (facet["jobId"], facet["workflow"]) == (job_id, STEMS)
    assert facet["application"] == hook.get_application()["name"]
    assert sorted(_datasets(download, "inputs")) == sorted(("musicai", f"{job_id}/{key}") for key in files)
    assert sorted(_datasets(download, "outputs")) == sorted(("file", path) for path in files.values())
    got = download["run"]["facets"]["musicai"]
    assert (got["jobId"], got["application"]) == (job_id, facet["application"])  # no workflow: not read

    text = json.dumps(events)
    for secret in (musicai.api_key, "X-Signature", "X-Expires", "/storage/", "musicai-sealed"):
        assert secret not in text, secret
