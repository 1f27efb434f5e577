"""Row 3: thousands of jobs waited on at once by one triggerer process.

Three ways to wait, each in a fresh worker process (``worker`` sub-command):

* ``trigger``: the provider's ``MusicAIJobTrigger``, run by Airflow's own ``TriggerRunner``
  (``create_triggers`` -> ``run_trigger`` tasks, ``cleanup_finished_triggers``, the blocked-loop
  watchdog), i.e. the triggerer's main loop without its supervisor socket. Triggers arrive as
  ``RunTrigger`` workloads with kwargs encrypted by ``Trigger.encrypt_kwargs``, exactly as the
  scheduler stores them.
* ``per-job``: :class:`per_job_trigger.PerJobClientTrigger` (the dbt Cloud pattern: a new client
  and one ``GET /job/:id`` per job per poll) in the same harness.
* ``sdk-threads``: musicai-sdk's ``wait_for_job_completion`` in one thread per job (what a
  PythonOperator per track does), ``job_monitor_interval`` = the poll interval.

The sensor row (``SENSOR_MODES``, ``python benchmarks/waiting.py sensors``) runs the trigger with
the kwargs ``MusicAIJobSensor`` defers with: ``sensor`` as it defers now (the workflow read in its
one pre-deferral request, ``delete_on_kill=False``), ``sensor-no-workflow`` as it deferred before
(no workflow, so the shared poller fetched each sensor's job on its own).

The orchestrator creates the jobs first, with emulator timings chosen so that every job is still
running for the first two poll intervals and the jobs then finish evenly over the next two. It
samples the emulator's counters every second; the delay of a job is the time of its event minus
its ``completedAt``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from common import MIB, ProcessSampler, cpu_seconds, emit, other_load, peak_rss_bytes, percentile, rss_bytes

#: The trigger under test; MUSICAI_BENCH_TRIGGER runs another class through the same harness.
TRIGGER_CLASSPATH = os.environ.get(
    "MUSICAI_BENCH_TRIGGER", "airflow_provider_musicai.triggers.musicai.MusicAIJobTrigger"
)
PER_JOB_CLASSPATH = "per_job_trigger.PerJobClientTrigger"
WORKFLOW = "music-ai/transcribe-vocals"
MODES = ("trigger", "per-job", "sdk-threads")
SENSOR_MODES = ("sensor", "sensor-no-workflow")

#: Job timeline, in poll intervals after the waiters start: all jobs are active until FIRST_DONE,
#: then they finish evenly until FIRST_DONE + SPREAD.
FIRST_DONE = 2.0
SPREAD = 2.0


# -- worker side ------------------------------------------------------------------------------


class _TimedEvents(deque):  # type: ignore[type-arg]
    """The TriggerRunner's outbound event queue, noting when each event was queued."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, float, dict[str, Any]]] = []

    def append(self, entry: Any) -> None:
        self.seen.append((int(entry.trigger_id), time.time(), dict(entry.event.payload)))
        super().append(entry)


def _trigger_kwargs(trigger_class: type, job: dict[str, str], poll: float, mode: str) -> dict[str, Any]:
    import inspect

    kwargs: dict[str, Any] = {"job_id": job["id"], "poll_interval": poll}
    if mode in SENSOR_MODES:
        kwargs["delete_on_kill"] = False  # what MusicAIJobSensor passes
    if "workflow" in inspect.signature(trigger_class.__init__).parameters and mode != "sensor-no-workflow":
        kwargs["workflow"] = job["workflow"]  # what the operators (and now the sensor) pass
    return kwargs


async def _run_triggers(
    classpath: str, jobs: list[dict[str, str]], poll: float, timeout: float, mode: str = "trigger"
) -> dict[str, Any]:
    import asyncio

    from airflow.executors.workloads import RunTrigger
    from airflow.jobs.triggerer_job_runner import TriggerRunner
    from airflow.models.trigger import Trigger

    runner = TriggerRunner()
    events = _TimedEvents()
    runner.events = events
    template = _trigger_kwargs(runner.get_trigger_by_classpath(classpath), jobs[0], poll, mode)
    ids = {index: job["id"] for index, job in enumerate(jobs, start=1)}
    workloads = [
        RunTrigger(
            id=index,
            classpath=classpath,
            encrypted_kwargs=Trigger.encrypt_kwargs({**template, "job_id": job_id}),
            ti=None,
        )
        for index, job_id in ids.items()
    ]
    baseline = rss_bytes()
    cpu_before = cpu_seconds()
    started = time.time()
    runner.to_create.extend(workloads)
    watchdog = asyncio.create_task(runner.block_watchdog())
    deadline = time.monotonic() + timeout
    failed: list[int] = []
    # TriggerRunner.arun's loop, minus the supervisor socket: clean up, create, cancel, sleep 1 s.
    while len(events.seen) < len(jobs) and time.monotonic() < deadline:
        await runner.cleanup_finished_triggers()
        while runner.failed_triggers:
            failed.append(runner.failed_triggers.popleft()[0])
        await runner.create_triggers()
        await runner.cancel_triggers()
        await asyncio.sleep(1)
    ended = time.time()
    cpu = cpu_seconds() - cpu_before
    stats = _poller_stats()
    for details in runner.triggers.values():
        details["task"].cancel()
    await asyncio.sleep(0.1)
    runner.stop = True
    await watchdog
    return {
        "started": started,
        "ended": ended,
        "cpu": cpu,
        "rss_baseline_mib": baseline / MIB,
        "events": [
            {"job_id": ids[trigger_id], "time": at, "status": payload.get("status")}
            for trigger_id, at, payload in events.seen
        ],
        "failed_triggers": failed,
        "poller": stats,
    }


def _poller_stats() -> list[dict[str, Any]]:
    """Stats of the shared pollers of this loop, when the trigger waits through them."""
    import asyncio

    try:
        from airflow_provider_musicai.triggers import _poller
    except ImportError:
        return []
    pollers = _poller._POLLERS.get(asyncio.get_running_loop(), {})
    return [
        {
            "conn_id": key[0],
            "poll_interval": key[1],
            "cycles": poller.stats.cycles,
            "list_requests": poller.stats.list_requests,
            "job_requests": poller.stats.job_requests,
            "failures": poller.stats.failures,
            "finished": getattr(poller.stats, "finished", None),
            "finished_from_pages": getattr(poller.stats, "finished_from_pages", None),
            "requests_per_cycle": list(poller.stats.requests_per_cycle),
        }
        for key, poller in pollers.items()
    ]


def _run_sdk_threads(
    jobs: list[dict[str, str]], poll: float, timeout: float, api_url: str, api_key: str
) -> dict[str, Any]:
    from musicai_sdk import MusicAiClient

    seen: list[dict[str, Any]] = []
    lock = threading.Lock()

    def wait(job_id: str) -> None:
        client = MusicAiClient(api_key=api_key, job_monitor_interval=poll, timeout=60)
        client.base_url = api_url
        try:
            status = str(client.wait_for_job_completion(job_id)["status"])
        except Exception as exc:
            status = f"error: {type(exc).__name__}"
        with lock:
            seen.append({"job_id": job_id, "time": time.time(), "status": status})

    baseline = rss_bytes()
    cpu_before = cpu_seconds()
    started = time.time()
    threads = [threading.Thread(target=wait, args=(job["id"],), daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    ended = time.time()
    with lock:
        seen = list(seen)
    return {
        "started": started,
        "ended": ended,
        "cpu": cpu_seconds() - cpu_before,
        "rss_baseline_mib": baseline / MIB,
        "events": seen,
        "failed_triggers": [],
        "poller": [],
    }


def worker(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="waiting.py worker")
    parser.add_argument("mode", choices=MODES + SENSOR_MODES)
    parser.add_argument("--poll", type=float, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args(argv)
    os.environ["_AIRFLOW_PROCESS_CONTEXT"] = "client"  # as TriggerRunner.run() sets it
    import asyncio

    if args.mode == "sdk-threads":
        import musicai_sdk  # noqa: F401
    else:
        import airflow.jobs.triggerer_job_runner  # noqa: F401
        import per_job_trigger  # noqa: F401

        import airflow_provider_musicai.triggers.musicai  # noqa: F401
    print("READY", flush=True)
    jobs: list[dict[str, str]] = json.loads(sys.stdin.readline())
    with ProcessSampler(os.getpid(), every=1.0) as sampler:
        if args.mode == "sdk-threads":
            outcome = _run_sdk_threads(jobs, args.poll, args.timeout, args.api_url, args.api_key)
        else:
            classpath = PER_JOB_CLASSPATH if args.mode == "per-job" else TRIGGER_CLASSPATH
            outcome = asyncio.run(_run_triggers(classpath, jobs, args.poll, args.timeout, args.mode))
    outcome["rss_peak_mib"] = peak_rss_bytes() / MIB
    outcome["rss_growth_mib"] = outcome["rss_peak_mib"] - outcome["rss_baseline_mib"]
    outcome["cpu_max_share"] = sampler.max_share
    emit(outcome)


# -- orchestrator side ------------------------------------------------------------------------


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class CounterSampler:
    """Reads the emulator's counters every second in a thread: (time, API requests, connections)."""

    def __init__(self, admin: Any) -> None:
        self.admin = admin
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="counters", daemon=True)

    def read(self) -> tuple[float, int, int]:
        counters = self.admin.counters()
        requests = sum(
            n for endpoint, n in counters["requests"].items() if endpoint.startswith("GET /v1/job")
        )
        return time.time(), requests, int(counters["connections"]["api"]["opened"])

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.samples.append(self.read())

    def __enter__(self) -> CounterSampler:
        self.samples.append(self.read())
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self.read())

    def requests_between(self, start: float, end: float) -> int:
        """API GET /job* requests between two times (interpolated between one-second samples)."""
        return round(self._at(end) - self._at(start))

    def _at(self, when: float) -> float:
        samples = self.samples
        if when <= samples[0][0]:
            return float(samples[0][1])
        for (t0, r0, _), (t1, r1, _) in itertools.pairwise(samples):
            if t0 <= when <= t1:
                return r0 + (r1 - r0) * (when - t0) / max(t1 - t0, 1e-9)
        return float(samples[-1][1])


def _create_jobs(
    emu: Any, n: int, start_at: float, poll: float, input_url: str, spread: float = SPREAD
) -> list[dict[str, str]]:
    """Create ``n`` jobs that stay active until ``start_at + FIRST_DONE*poll`` and then finish
    evenly over ``spread*poll`` (processing_seconds is set before each of 50 batches)."""
    import requests

    local = threading.local()

    def post(index: int) -> dict[str, str]:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        answer = session.post(
            emu.api_url + "/job",
            headers=emu.headers(),
            json={"name": f"bench {index}", "workflow": WORKFLOW, "params": {"inputUrl": input_url}},
            timeout=60,
        )
        answer.raise_for_status()
        return {"id": str(answer.json()["id"]), "workflow": WORKFLOW}

    batch = max(1, -(-n // 50))  # 50 distinct completion times, whatever the number of jobs
    jobs: list[dict[str, str]] = []
    with ThreadPoolExecutor(8) as pool:
        for first in range(0, n, batch):
            count = min(batch, n - first)
            share = (first + count / 2) / n
            done_at = start_at + (FIRST_DONE + spread * share) * poll
            emu.admin.configure(queued_seconds=0, processing_seconds=max(0.0, done_at - time.time()))
            jobs.extend(pool.map(post, range(first, first + count)))
    return jobs


def run_wait(
    emu: Any,
    mode: str,
    n: int,
    poll: float,
    env: dict[str, str],
    input_url: str,
    log: Callable[[str], None],
    finished_before: float = 0.0,
    spread: float = SPREAD,
) -> dict[str, Any]:
    """One measured wait of ``n`` jobs by ``mode``; returns the figures of that run.

    ``finished_before`` (a fraction of ``n``) models a triggerer restart: that share of the jobs
    finish while no triggerer runs, and a fresh process then starts every trigger at once, as a
    restarted triggerer does with the deferred tasks it finds in the database. ``spread``: the
    poll intervals over which the jobs finish (row 3b's burst: 1)."""
    emu.admin.reset(blobs=False)
    # Long enough for every way that keeps up; a way that falls behind is cut off and its missing
    # events count as delays of at least (end - completedAt).
    timeout = (FIRST_DONE + spread) * poll + max(60.0, 10 * poll)
    process = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "worker",
            mode,
            "--poll",
            str(poll),
            "--timeout",
            str(timeout),
            "--api-url",
            emu.api_url,
            "--api-key",
            emu.api_key,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env, "AIRFLOW_CONN_MUSICAI_DEFAULT": emu.connection_json()},
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    stderr: list[str] = []
    drain = threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
    drain.start()
    try:
        while (line := process.stdout.readline()) and line.strip() != "READY":
            pass
        if not line:
            raise RuntimeError("the wait worker exited before it was ready:\n" + "".join(stderr)[-3000:])
        setup = time.time()
        start_at = setup + 2.0 + n / 150
        jobs = _create_jobs(emu, n, start_at, poll, input_url, spread)
        created = time.time()
        if created > start_at:
            log(f"  (creating {n} jobs took {created - setup:.1f}s, {created - start_at:.1f}s past the plan)")
            start_at = created
        time.sleep(max(0.0, start_at - time.time()))
        finished = jobs[: round(n * finished_before)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda job: emu.admin.complete_job(job["id"]), finished))
        with CounterSampler(emu.admin) as counters, ProcessSampler(emu.pid, every=1.0) as emulator:
            start_at = time.time()
            process.stdin.write(json.dumps(jobs) + "\n")
            process.stdin.flush()
            output = process.stdout.read()
            process.wait(timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    drain.join(5)
    if os.environ.get("MUSICAI_BENCH_WORKER_LOG"):  # the worker's own log (the poller's warnings)
        with open(os.environ["MUSICAI_BENCH_WORKER_LOG"], "a") as worker_log:
            worker_log.writelines(stderr)
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"the {mode} worker failed ({process.returncode}):\n" + "".join(stderr)[-3000:])
    outcome = json.loads(lines[-1][len("RESULT ") :])
    row = _summarise(emu, mode, n, poll, jobs, start_at, outcome, counters, emulator)
    # The burst: every GET /job* from the first planned completion to the last event (or the cutoff).
    last_event = max((event["time"] for event in outcome["events"]), default=outcome["ended"])
    row["requests_burst"] = counters.requests_between(start_at + FIRST_DONE * poll, last_event + 1.0)
    row["other_load_cores"] = other_load(start_at, outcome["ended"])
    row["finished_before_start"] = len(finished)
    return row


def _summarise(
    emu: Any,
    mode: str,
    n: int,
    poll: float,
    jobs: list[dict[str, str]],
    start_at: float,
    outcome: dict[str, Any],
    counters: CounterSampler,
    emulator: ProcessSampler,
) -> dict[str, Any]:
    completed = {job["id"]: job for job in emu.admin.jobs()}
    events_by_job: dict[str, list[dict[str, Any]]] = {}
    for event in outcome["events"]:
        events_by_job.setdefault(event["job_id"], []).append(event)
    delays = []
    missing = 0
    for job in jobs:
        document = completed.get(job["id"]) or {}
        events = events_by_job.get(job["id"], [])
        if not document.get("completedAt"):
            continue
        if events:
            delays.append(events[0]["time"] - _epoch(document["completedAt"]))
        else:
            missing += 1
            delays.append(outcome["ended"] - _epoch(document["completedAt"]))
    first_done = start_at + FIRST_DONE * poll
    windows = []
    end = outcome["ended"]
    k = 0
    while start_at + k * poll < end:
        windows.append(counters.requests_between(start_at + k * poll, min(end, start_at + (k + 1) * poll)))
        k += 1
    steady = [
        counters.requests_between(start_at + k * poll, start_at + (k + 1) * poll)
        for k in range(1, int(FIRST_DONE))
        if start_at + (k + 1) * poll <= first_done
    ]
    first, last = counters.samples[0], counters.samples[-1]
    statuses: dict[str, int] = {}
    for event in outcome["events"]:
        statuses[str(event["status"])] = statuses.get(str(event["status"]), 0) + 1
    return {
        "mode": mode,
        "jobs": n,
        "poll_interval": poll,
        "events": len(outcome["events"]),
        "jobs_with_one_event": sum(1 for events in events_by_job.values() if len(events) == 1),
        "event_statuses": statuses,
        "failed_triggers": len(outcome["failed_triggers"]),
        "requests_total": last[1] - first[1],
        "requests_per_window": windows,
        "requests_steady_cycle": max(steady) if steady else None,
        "requests_max_window": max(windows) if windows else None,
        "connections_opened": last[2] - first[2],
        "rss_growth_mib": outcome["rss_growth_mib"],
        "rss_baseline_mib": outcome["rss_baseline_mib"],
        "cpu_seconds": outcome["cpu"],
        "cpu_max_share": outcome["cpu_max_share"],
        "wall": outcome["ended"] - outcome["started"],
        "delays": len(delays),
        "events_missing_at_cutoff": missing,
        "delay_p50": percentile(delays, 50),
        "delay_p99": percentile(delays, 99),
        "delay_max": max(delays, default=float("nan")),
        "emulator": emulator.summary(),
        "poller": outcome["poller"],
    }


def sensors(argv: list[str]) -> None:
    """The sensor row: requests per poll cycle for N deferred sensors, as they defer now and before."""
    import tempfile

    from common import airflow_env
    from run import _input_url, _wait_line

    from airflow_provider_musicai.testing import EmulatorServer

    parser = argparse.ArgumentParser(prog="waiting.py sensors")
    parser.add_argument("--jobs", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--poll", type=float, default=2.0)
    parser.add_argument("--modes", nargs="+", choices=SENSOR_MODES + MODES, default=list(SENSOR_MODES))
    parser.add_argument("--spread", type=float, default=SPREAD, help="poll intervals the jobs finish over")
    args = parser.parse_args(argv)
    env = airflow_env(Path(tempfile.mkdtemp(prefix="musicai-bench-sensors-")))
    os.environ.update(env)
    rows = []
    with EmulatorServer() as emu:
        input_url = _input_url(emu)
        for n in args.jobs:
            for mode in args.modes:
                print(f"{n} jobs, {mode}", file=sys.stderr, flush=True)
                row = run_wait(
                    emu,
                    mode,
                    n,
                    args.poll,
                    env,
                    input_url,
                    lambda line: print(line, file=sys.stderr),
                    spread=args.spread,
                )
                print(_wait_line(row), file=sys.stderr, flush=True)
                rows.append(
                    {
                        key: row[key]
                        for key in (
                            "mode",
                            "jobs",
                            "poll_interval",
                            "events",
                            "jobs_with_one_event",
                            "failed_triggers",
                            "requests_steady_cycle",
                            "requests_per_window",
                            "requests_total",
                            "requests_max_window",
                            "requests_burst",
                            "delay_p50",
                            "delay_p99",
                            "delay_max",
                            "events_missing_at_cutoff",
                            "rss_growth_mib",
                            "cpu_seconds",
                            "poller",
                        )
                    }
                )
    print(json.dumps(rows, indent=1))


def restart(argv: list[str]) -> None:
    """The restart row: a fresh triggerer process takes over N deferred waits of which a share
    finished while it was down; how many requests its first poll cycle makes."""
    import tempfile

    from common import airflow_env
    from run import _input_url, _wait_line

    from airflow_provider_musicai.testing import EmulatorServer

    parser = argparse.ArgumentParser(prog="waiting.py restart")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--poll", type=float, default=5.0)
    parser.add_argument("--finished", type=float, default=0.1, help="share finished while down")
    parser.add_argument("--modes", nargs="+", choices=SENSOR_MODES + MODES, default=["trigger", "sensor"])
    args = parser.parse_args(argv)
    env = airflow_env(Path(tempfile.mkdtemp(prefix="musicai-bench-restart-")))
    os.environ.update(env)
    rows = []
    with EmulatorServer() as emu:
        input_url = _input_url(emu)
        for mode in args.modes:
            print(f"restart: {args.jobs} jobs, {mode}", file=sys.stderr, flush=True)
            row = run_wait(
                emu,
                mode,
                args.jobs,
                args.poll,
                env,
                input_url,
                lambda line: print(line, file=sys.stderr),
                finished_before=args.finished,
            )
            print(_wait_line(row), file=sys.stderr, flush=True)
            cycles = [cycle for poller in row["poller"] for cycle in poller["requests_per_cycle"]]
            rows.append(
                {
                    "mode": mode,
                    "jobs": args.jobs,
                    "poll_interval": args.poll,
                    "finished_before_start": row["finished_before_start"],
                    "first_cycle_requests": cycles[0] if cycles else None,
                    "requests_per_cycle": cycles,
                    "events": row["events"],
                    "rss_growth_mib": row["rss_growth_mib"],
                    "cpu_seconds": row["cpu_seconds"],
                    "delay_p99": row["delay_p99"],
                }
            )
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2:])
    elif sys.argv[1:2] == ["sensors"]:
        sensors(sys.argv[2:])
    elif sys.argv[1:2] == ["restart"]:
        restart(sys.argv[2:])
    else:
        sys.exit(
            "usage: waiting.py worker ... | waiting.py sensors [--jobs N ...] | waiting.py restart [--jobs N]"
            " (or run benchmarks/run.py)"
        )
