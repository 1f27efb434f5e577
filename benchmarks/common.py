"""Helpers shared by the benchmark orchestrator (run.py) and its worker processes.

Workers are separate Python processes started by the orchestrator; each prints exactly one JSON
line prefixed with ``RESULT `` on stdout, which :func:`run_worker` parses. Measuring in a fresh
process per run keeps peak RSS (``ru_maxrss``) honest.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
MIB = 1 << 20
RESULT_PREFIX = "RESULT "


def emit(result: dict[str, Any]) -> None:
    """Print a worker's result line (the orchestrator reads the last one)."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_worker(
    script: str, args: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 900
) -> dict[str, Any]:
    """Run ``benchmarks/<script>`` in a fresh interpreter and return its ``RESULT`` JSON."""
    command = [sys.executable, str(BENCH_DIR / script), *args]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        tail = (completed.stderr or "")[-3000:]
        raise RuntimeError(f"{script} {' '.join(args)} failed ({completed.returncode}):\n{tail}")
    return dict(json.loads(lines[-1][len(RESULT_PREFIX) :]))


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Spread:
    """min / median / max of a few runs."""

    values: list[float]

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def fmt(self, digits: int = 2, unit: str = "") -> str:
        """``median (min-max)``, or one value for a single run."""
        if len(self.values) == 1 or self.min == self.max:
            return f"{self.median:.{digits}f}{unit}"
        return f"{self.median:.{digits}f}{unit} ({self.min:.{digits}f}-{self.max:.{digits}f})"


def spread(values: Iterable[float]) -> Spread:
    return Spread([float(value) for value in values])


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model, kernel and Python of this machine."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            model = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), model
            )
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(memory / (1 << 30), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    """Versions of everything compared (packages and curl)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for name in (
        "airflow-provider-musicai",
        "apache-airflow",
        "apache-airflow-task-sdk",
        "apache-airflow-providers-dbt-cloud",
        "musicai-sdk",
        "httpx2",
        "requests",
        "urllib3",
        "uvicorn",
        "httptools",
        "fastapi",
    ):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=False).stdout
    found["curl"] = curl.split()[1] if curl else "not installed"
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    found["repo commit"] = commit or "unknown"
    dirty = subprocess.run(
        ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "airflow_provider_musicai"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split("\n")
    changed = sorted(line[3:] for line in dirty if line.strip())
    if changed:
        found["repo commit"] += " + uncommitted changes in " + ", ".join(changed)
    return found


@dataclass
class ProcessSampler:
    """Samples a process's CPU use (share of one core) and RSS every ``every`` seconds in a thread."""

    pid: int
    every: float = 0.5
    cpu_shares: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _start_cpu: float = 0.0
    _start_time: float = 0.0
    _end_cpu: float = 0.0
    _end_time: float = 0.0

    def _cpu(self) -> float:
        import psutil

        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system + times.children_user + times.children_system)

    def _run(self) -> None:
        import psutil

        process = psutil.Process(self.pid)
        last_cpu, last_time = self._start_cpu, self._start_time
        while not self._stop.wait(self.every):
            now_cpu, now = self._cpu(), time.monotonic()
            self.cpu_shares.append((now_cpu - last_cpu) / max(now - last_time, 1e-9))
            self.rss.append(int(process.memory_info().rss))
            last_cpu, last_time = now_cpu, now

    def __enter__(self) -> ProcessSampler:
        self._start_cpu, self._start_time = self._cpu(), time.monotonic()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._end_cpu, self._end_time = self._cpu(), time.monotonic()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def mean_share(self) -> float:
        """Average CPU share (1.0 = one core busy) over the whole sampled interval."""
        return (self._end_cpu - self._start_cpu) / max(self._end_time - self._start_time, 1e-9)

    @property
    def max_share(self) -> float:
        return max(self.cpu_shares, default=self.mean_share)

    @property
    def max_rss(self) -> int:
        return max(self.rss, default=0)

    def summary(self) -> dict[str, float]:
        return {
            "cpu_mean": round(self.mean_share, 3),
            "cpu_max": round(self.max_share, 3),
            "rss_max_mib": round(self.max_rss / MIB, 1),
        }


def wait_until(condition: Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
    """Poll ``condition`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


def airflow_env(home: Path) -> dict[str, str]:
    """Environment for any process that imports Airflow: a private AIRFLOW_HOME, no examples."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PYTHONWARNINGS": "ignore",
    }


def _busy_cores_jiffies() -> tuple[float, float]:
    """(busy, total) CPU jiffies of the whole machine since boot."""
    with open("/proc/stat") as stat:
        fields = [float(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def _tree_cpu_seconds(root: int) -> float:
    """CPU seconds of ``root`` (including its reaped children) and of its live descendants."""
    import psutil

    total = 0.0
    try:
        process = psutil.Process(root)
        processes = [process, *process.children(recursive=True)]
    except psutil.Error:
        return total
    for member in processes:
        try:
            times = member.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


class MachineLoad:
    """Samples, every second, how much CPU the machine spends outside this benchmark's processes.

    Other work on the machine (test suites of other people, say) slows any measurement down; the
    report shows this "other load" next to the figures so that a noisy run is recognisable.
    """

    def __init__(self, every: float = 1.0) -> None:
        self.every = every
        self.samples: list[tuple[float, float]] = []  # (time, cores busy outside the benchmark)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="machine-load", daemon=True)
        self._ticks = os.sysconf("SC_CLK_TCK")

    def _run(self) -> None:
        busy, _ = _busy_cores_jiffies()
        ours = _tree_cpu_seconds(os.getpid())
        last = time.time()
        while not self._stop.wait(self.every):
            now_busy, _ = _busy_cores_jiffies()
            now_ours = _tree_cpu_seconds(os.getpid())
            now = time.time()
            elapsed = max(now - last, 1e-9)
            other = (now_busy - busy) / self._ticks / elapsed - (now_ours - ours) / elapsed
            self.samples.append((now, max(0.0, other)))
            busy, ours, last = now_busy, now_ours, now

    def start(self) -> MachineLoad:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> float:
        """Mean cores used by other processes between two times (0 if no sample fell inside)."""
        inside = [other for when, other in self.samples if start <= when <= end + self.every]
        return sum(inside) / len(inside) if inside else 0.0

    def summary(self) -> dict[str, float]:
        values = [other for _, other in self.samples]
        return {
            "mean_cores": round(sum(values) / len(values), 2) if values else 0.0,
            "max_cores": round(max(values), 2) if values else 0.0,
            "share_of_time_above_half_a_core": round(sum(v > 0.5 for v in values) / len(values), 2)
            if values
            else 0.0,
        }


_LOAD: MachineLoad | None = None


def start_machine_load() -> MachineLoad:
    """Start the process-wide sampler that :func:`other_load` reads."""
    global _LOAD
    _LOAD = MachineLoad().start()
    return _LOAD


def other_load(start: float, end: float) -> float | None:
    """Mean cores used by processes outside the benchmark between two times, if sampled."""
    return None if _LOAD is None else round(_LOAD.between(start, end), 2)
