"""The provider's metrics reach a real StatsD listener (a UDP socket on loopback the test owns)
through Airflow's own stats, configured as a deployment would: ``[metrics] statsd_*``."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_musicai.exceptions import MusicAIJobFailedError
from airflow_provider_musicai.hooks.musicai import MusicAIHook
from airflow_provider_musicai.triggers._poller import SharedJobPoller
from tests.helpers.airflow import FakeTI, airflow_major, load_example, run_dag, task_states

# Airflow's StatsD backend is its ``statsd`` extra: without the client there is nothing to listen to.
pytest.importorskip("statsd", reason="Airflow's StatsD backend needs apache-airflow[statsd]")

STEMS = "music-ai/stems-vocals-accompaniment"
#: Not an http(s) URL: the (emulated) job FAILS with BAD_INPUT.
BAD_INPUT_URL = "ftp://example.invalid/track.wav"


class StatsdListener:
    """Collects the metric names a StatsD client sends to its socket."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.names: Counter[str] = Counter()

    def wait_for(self, *names: str, deadline: float = 60.0) -> Counter[str]:
        """Every name received, once all of ``names`` arrived (and nothing more came for a moment)
        or ``deadline`` seconds passed."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                packet = self.sock.recv(65536)
            except TimeoutError:
                if all(self.names[name] for name in names):
                    break
                continue
            for line in packet.decode().splitlines():
                self.names[line.split(":", 1)[0]] += 1
        return self.names


@pytest.fixture
def statsd(monkeypatch: pytest.MonkeyPatch) -> Iterator[StatsdListener]:
    """Airflow's stats sent to a fresh listener, as ``AIRFLOW__METRICS__STATSD_*`` configure them
    (Airflow picks its backend on first use: the test resets it, as Airflow's own tests do)."""
    listener = StatsdListener()
    for name, value in {
        "STATSD_ON": "True",
        "STATSD_HOST": "127.0.0.1",
        "STATSD_PORT": str(listener.port),
        "STATSD_PREFIX": "airflow",
    }.items():
        monkeypatch.setenv(f"AIRFLOW__METRICS__{name}", value)
    if airflow_major() >= 3:
        from airflow.sdk._shared.observability.metrics import stats
        from airflow.sdk.observability.metrics import stats_utils

        monkeypatch.setattr(stats, "_factory", stats_utils.get_stats_factory())
        monkeypatch.setattr(stats, "_backend", None)
    else:
        from airflow.metrics import statsd_logger
        from airflow.stats import Stats

        monkeypatch.setattr(type(Stats), "factory", statsd_logger.get_statsd_logger)
        monkeypatch.setattr(Stats, "instance", None)
    yield listener
    listener.sock.close()


@pytest.mark.usefixtures("airflow_db")
def test_a_dag_run_reports_its_jobs(musicai: Any, statsd: StatsdListener, tmp_path: Path) -> None:
    dag_run = run_dag(load_example("example_musicai_chain"), {"output_dir": str(tmp_path)})
    assert set(task_states(dag_run).values()) == {"success"}
    names = statsd.wait_for(
        "airflow.musicai.job.created",
        "airflow.musicai.job.succeeded",
        "airflow.musicai.job.duration",
        "airflow.musicai.poller.requests",
        "airflow.musicai.poller.waits",
    )
    assert names["airflow.musicai.job.created"] == 2, names
    assert names["airflow.musicai.job.succeeded"] == 2, names
    assert names["airflow.musicai.job.duration"] == 2, names
    assert not [name for name in names if name.startswith("airflow.musicai.job.failed")], names


def test_a_failed_job_is_counted_by_its_code(
    hook: MusicAIHook, input_url: Callable[..., str], statsd: StatsdListener
) -> None:
    job_id = hook.create_job("metrics", STEMS, {"inputUrl": BAD_INPUT_URL})
    with pytest.raises(MusicAIJobFailedError) as failed:
        hook.wait_for_job(job_id, poll_interval=0.05, timeout=60)
    assert failed.value.code == "BAD_INPUT"
    names = statsd.wait_for("airflow.musicai.job.failed.BAD_INPUT", "airflow.musicai.job.duration")
    assert names["airflow.musicai.job.created"] == 1, names
    assert names["airflow.musicai.job.failed.BAD_INPUT"] == 1, names
    assert names["airflow.musicai.job.succeeded"] == 0, names


def test_the_shared_poller_reports_its_cycles_and_the_jobs_it_saw_end(
    hook: MusicAIHook, input_url: Callable[..., str], statsd: StatsdListener
) -> None:
    good = hook.create_job("metrics ok", STEMS, {"inputUrl": input_url()})
    bad = hook.create_job("metrics bad", STEMS, {"inputUrl": BAD_INPUT_URL})

    async def wait_both() -> list[dict[str, Any]]:
        poller = SharedJobPoller(MusicAIHook(), poll_interval=0.05)
        return await asyncio.gather(poller.wait(good, STEMS), poller.wait(bad, STEMS))

    jobs = asyncio.run(wait_both())
    assert [job["status"] for job in jobs] == ["SUCCEEDED", "FAILED"]
    names = statsd.wait_for(
        "airflow.musicai.poller.requests",
        "airflow.musicai.poller.waits",
        "airflow.musicai.job.succeeded",
        "airflow.musicai.job.failed.BAD_INPUT",
    )
    assert names["airflow.musicai.poller.requests"] >= 1, names
    assert names["airflow.musicai.poller.waits"] == names["airflow.musicai.poller.requests"], names
    assert names["airflow.musicai.job.succeeded"] == 1, names
    assert names["airflow.musicai.job.failed.BAD_INPUT"] == 1, names


def test_a_retry_that_reattaches_and_a_kill_that_deletes(
    musicai: Any,
    input_url: Callable[..., str],
    make_context: Callable[..., dict[str, Any]],
    statsd: StatsdListener,
) -> None:
    from airflow_provider_musicai.operators.musicai import MusicAICreateJobOperator

    musicai.admin.configure(queued_seconds=60)
    url = input_url()

    def attempt(try_number: int) -> MusicAICreateJobOperator:
        op = MusicAICreateJobOperator(
            task_id="stems",
            name="stems",
            workflow=STEMS,
            workflow_params={"inputUrl": url},
            wait_for_completion=False,
            deferrable=False,
        )
        ti = FakeTI()
        ti.try_number = try_number
        op.execute(make_context(ti))
        return op

    first, retry = attempt(1), attempt(2)
    assert retry.job_id == first.job_id
    retry.on_kill()
    assert musicai.admin.jobs() == []
    names = statsd.wait_for("airflow.musicai.job.reattached", "airflow.musicai.job.deleted.kill")
    assert names["airflow.musicai.job.created"] == 1, names
    assert names["airflow.musicai.job.reattached"] == 1, names
    assert names["airflow.musicai.job.deleted.kill"] == 1, names


def test_a_job_deleted_on_timeout_is_counted(
    musicai: Any,
    input_url: Callable[..., str],
    make_context: Callable[..., dict[str, Any]],
    statsd: StatsdListener,
) -> None:
    from airflow_provider_musicai.exceptions import MusicAITimeoutError
    from airflow_provider_musicai.operators.musicai import MusicAICreateJobOperator

    musicai.admin.configure(queued_seconds=60)
    op = MusicAICreateJobOperator(
        task_id="stems",
        name="stems",
        workflow=STEMS,
        workflow_params={"inputUrl": input_url()},
        deferrable=False,
        poll_interval=0.2,
        timeout=0.5,
        retries=0,
    )
    with pytest.raises(MusicAITimeoutError):
        op.execute(make_context())
    assert musicai.admin.jobs() == []
    names = statsd.wait_for("airflow.musicai.job.deleted.timeout")
    assert names["airflow.musicai.job.deleted.timeout"] == 1, names
    assert names["airflow.musicai.job.deleted.kill"] == 0, names
