"""Rows 1 and 2: a 1 GiB upload and a 1 GiB result download, hook vs curl vs musicai-sdk.

Every measured transfer runs in a process of its own: a Python worker (this file, ``worker``
sub-command) for the hook and the SDK, ``curl`` for the reference. Python workers report the wall
time of the transfer alone (imports and start-up excluded) and their RSS growth (peak ``ru_maxrss``
minus the RSS just before the transfer). curl's figure is its whole peak RSS (from ``wait4``),
an upper bound of its growth.

The same clients also talk to :mod:`loopback_sink` (a raw socket server that costs one
``recv_into``/``sendall`` per block) so that the emulator can be ruled out as the limit.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import MIB, cpu_seconds, emit, other_load, peak_rss_bytes, rss_bytes, run_worker

STEMS = "music-ai/stems-vocals-accompaniment"


# -- worker side ------------------------------------------------------------------------------


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (the emulator), including its threads."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(action: Callable[[], Any], emulator_pid: int) -> dict[str, Any]:
    import gc

    gc.collect()
    baseline = rss_bytes()
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = cpu_seconds()
    emulator_before = _process_cpu(emulator_pid)
    started = time.perf_counter()
    action()
    wall = time.perf_counter() - started
    emulator_cpu = _process_cpu(emulator_pid) - emulator_before
    peak = peak_rss_bytes()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "wall": wall,
        "cpu": cpu_seconds() - cpu_before,
        "cpu_system": usage.ru_stime - usage_before.ru_stime,
        "page_faults": usage.ru_minflt - usage_before.ru_minflt,
        "emulator_cpu_share": emulator_cpu / wall,
        "rss_baseline_mib": baseline / MIB,
        "rss_peak_mib": peak / MIB,
        "rss_growth_mib": max(0, peak - baseline) / MIB,
    }


def worker(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="transfers.py worker")
    parser.add_argument(
        "what", choices=["hook-upload", "sdk-upload", "hook-download", "sdk-download", "hook-upload-sink"]
    )
    parser.add_argument("--file", help="file to upload")
    parser.add_argument("--url", help="the URL to download, or the sink URL to upload to")
    parser.add_argument("--dest", help="destination folder")
    parser.add_argument("--api-url")
    parser.add_argument("--api-key")
    parser.add_argument("--emulator-pid", type=int, required=True)
    args = parser.parse_args(argv)
    url = args.url

    # Import everything the transfer needs before the baseline is taken.
    action: Callable[[], Any]
    if args.what.startswith("hook"):
        from airflow_provider_musicai.hooks.musicai import MusicAIHook

        hook = MusicAIHook()
        hook.config  # noqa: B018 (reads the connection now, outside the measurement)
        # The hook reports what it wrote to Airflow's hook lineage collector. The collector's first
        # use imports Airflow's lineage machinery and every installed provider's asset handlers
        # (boto3 with the amazon provider): ~0.6 s of CPU and ~10 MiB once per process, not per
        # byte, so it is paid here with the other imports (RESULTS.md, row 2, says so).
        from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

        get_hook_lineage_collector()  # type: ignore[no-untyped-call]
        if args.what == "hook-upload":
            action = lambda: hook.upload_file(args.file)  # noqa: E731
        elif args.what == "hook-upload-sink":
            # The hook's own upload path, with the signed URL pointing at the loopback sink.
            hook.get_upload_url = lambda: {"uploadUrl": url, "downloadUrl": url}  # type: ignore[method-assign]
            action = lambda: hook.upload_file(args.file)  # noqa: E731
        else:
            job = {"id": "benchmark", "status": "SUCCEEDED", "result": {"vocals": url}}
            action = lambda: hook.download_results(job, args.dest)  # noqa: E731
    else:
        from musicai_sdk import MusicAiClient

        client = MusicAiClient(api_key=args.api_key)
        client.base_url = args.api_url
        if args.what == "sdk-upload":
            action = lambda: client.upload_file(args.file)  # noqa: E731
        else:
            action = lambda: client.download_file(url, os.path.join(args.dest, "vocals.wav"))  # noqa: E731
    emit(_measure(action, args.emulator_pid))


# -- orchestrator side ------------------------------------------------------------------------


def make_upload_file(path: Path, size: int) -> None:
    """A mono 16-bit 44.1 kHz WAV of ``size`` bytes, written for real (not sparse)."""
    if path.exists() and path.stat().st_size == size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    data = size - 44
    header = (
        b"RIFF"
        + struct.pack("<I", size - 8)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, 44100, 88200, 2, 16)
        + b"data"
        + struct.pack("<I", data)
    )
    block = os.urandom(MIB)
    with path.open("wb") as out:
        out.write(header)
        left = data
        while left:
            step = min(left, len(block))
            out.write(block[:step])
            left -= step


def _peak_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def curl(args: list[str], emulator_pid: int) -> dict[str, Any]:
    """Run curl: wall time, CPU, and its peak RSS (VmHWM, read while it runs).

    ``ru_maxrss`` from ``wait4`` would be wrong here: it includes the RSS that the forked child
    inherits from this (large) Python process before ``exec``.
    """
    emulator_before = _process_cpu(emulator_pid)
    started = time.perf_counter()
    process = subprocess.Popen(["curl", "-sS", "-f", *args], stdout=subprocess.DEVNULL)
    peak_kib = 0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        peak_kib = max(peak_kib, _peak_rss_kib(process.pid) or 0)
        time.sleep(0.002)
    wall = time.perf_counter() - started
    emulator_cpu = _process_cpu(emulator_pid) - emulator_before
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"curl {' '.join(args[:2])}... failed with {process.returncode}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "emulator_cpu_share": emulator_cpu / wall,
        "rss_baseline_mib": 0.0,
        "rss_peak_mib": peak_kib / 1024,
        "rss_growth_mib": peak_kib / 1024,
    }


class SinkServer:
    """:mod:`loopback_sink` in a subprocess."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("loopback_sink.py"))],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _rotated(names: list[str], run: int) -> list[str]:
    """The row order of ``run``: rotated so that no method always follows the same one."""
    shift = run % len(names)
    return names[shift:] + names[:shift]


def _make_result(emu: Any, upload_file: Path, session: Any) -> tuple[str, int, str]:
    """A real 1 GiB job result: the stems of a mono WAV (``vocals`` is the input's samples)."""
    from airflow_provider_musicai.hooks.musicai import MusicAIHook

    os.environ["AIRFLOW_CONN_MUSICAI_DEFAULT"] = emu.connection_json()
    hook = MusicAIHook()
    try:
        sealed = hook.upload_file(str(upload_file))
        job_id = hook.create_job("benchmark 1 GiB result", STEMS, {"inputUrl": sealed})
        job = hook.wait_for_job(job_id, poll_interval=0.5, timeout=600)
    finally:
        hook.close()
    result_url = str(job["result"]["vocals"])
    size = int(session.head(result_url, timeout=30).headers["content-length"])
    return result_url, size, job_id


def run_transfers(
    emu: Any, work: Path, size: int, runs: int, env: dict[str, str], log: Callable[[str], None]
) -> dict[str, Any]:
    """Upload and download rows: {row name: [one measurement dict per run]} and setup facts."""
    import requests

    upload_file = work / f"upload-{size // MIB}MiB.wav"
    make_upload_file(upload_file, size)
    downloads = work / "downloads"
    session = requests.Session()
    worker_env = {**env, "AIRFLOW_CONN_MUSICAI_DEFAULT": emu.connection_json()}
    sdk_args = ["--api-url", emu.api_url, "--api-key", emu.api_key, "--emulator-pid", str(emu.pid)]
    rows: dict[str, list[dict[str, Any]]] = {}

    def fresh_upload_url() -> str:
        answer = session.get(emu.api_url + "/upload", headers=emu.headers(), timeout=30)
        answer.raise_for_status()
        return str(answer.json()["uploadUrl"])

    def python_worker(what: str, *extra: str) -> dict[str, Any]:
        return run_worker("transfers.py", ["worker", what, *extra, *sdk_args], env=worker_env)

    def download_to(call: Callable[[Path], dict[str, Any]], expected: int) -> dict[str, Any]:
        shutil.rmtree(downloads, ignore_errors=True)
        downloads.mkdir(parents=True)
        try:
            measured = call(downloads)
            written = sum(p.stat().st_size for p in downloads.iterdir() if p.is_file())
            if written != expected:
                raise RuntimeError(f"the download wrote {written} bytes, expected {expected}")
            return measured
        finally:
            shutil.rmtree(downloads, ignore_errors=True)

    Rows = dict[str, Callable[[], dict[str, Any]]]

    def run_curl(args: list[str]) -> dict[str, Any]:
        return curl(args, emu.pid)

    def measure(group: Rows, nbytes: int, before: Callable[[], None]) -> None:
        for run in range(runs):
            for name in _rotated(list(group), run):
                before()
                os.sync()  # no dirty pages of the previous run are written back during this one
                time.sleep(0.3)
                started = time.time()
                measured = group[name]()
                measured["other_load_cores"] = other_load(started, time.time())
                measured["throughput_mb_s"] = nbytes / 1e6 / measured["wall"]
                rows.setdefault(name, []).append(measured)
                log(
                    f"  {name}: {measured['wall']:.2f}s ({measured['throughput_mb_s']:.0f} MB/s), "
                    f"RSS +{measured['rss_growth_mib']:.0f} MiB, "
                    f"emulator {measured['emulator_cpu_share']:.0%} of a core"
                )

    sink = SinkServer()
    try:
        file_arg = ["--file", str(upload_file)]
        uploads: Rows = {
            "upload: hook.upload_file": lambda: python_worker("hook-upload", *file_arg),
            "upload: curl -T": lambda: run_curl(
                ["-T", str(upload_file), fresh_upload_url(), "-o", "/dev/null"]
            ),
            "upload: musicai-sdk upload_file": lambda: python_worker("sdk-upload", *file_arg),
            "upload ceiling: curl -T to loopback sink": lambda: run_curl(
                ["-T", str(upload_file), sink.url + "/upload", "-o", "/dev/null"]
            ),
            "upload ceiling: hook to loopback sink": lambda: python_worker(
                "hook-upload-sink", *file_arg, "--url", sink.url + "/upload"
            ),
        }
        # Each upload stores 1 GiB in the emulator: drop the previous one first (outside timing).
        measure(uploads, size, lambda: emu.admin.reset(blobs=True))

        log("transfers: making the 1 GiB result (upload + stems job)")
        emu.admin.reset(blobs=True)
        result_url, result_size, job_id = _make_result(emu, upload_file, session)
        source_url = f"{sink.url}/{result_size}"

        def url_worker(what: str, url: str) -> Callable[[Path], dict[str, Any]]:
            return lambda dest: python_worker(what, "--url", url, "--dest", str(dest))

        def curl_to_file(url: str) -> Callable[[Path], dict[str, Any]]:
            return lambda dest: run_curl(["-o", str(dest / "vocals.wav"), url])

        downloads_rows: Rows = {
            "download: hook.download_results": lambda: download_to(
                url_worker("hook-download", result_url), result_size
            ),
            "download: curl -o (same folder)": lambda: download_to(curl_to_file(result_url), result_size),
            "download: musicai-sdk download_file": lambda: download_to(
                url_worker("sdk-download", result_url), result_size
            ),
            "download: curl -o /dev/null": lambda: run_curl(["-o", "/dev/null", result_url]),
            "download ceiling: curl -o from loopback source": lambda: download_to(
                curl_to_file(source_url), result_size
            ),
            "download ceiling: hook from loopback source": lambda: download_to(
                url_worker("hook-download", source_url), result_size
            ),
        }
        measure(downloads_rows, result_size, lambda: None)
    finally:
        sink.close()
        shutil.rmtree(downloads, ignore_errors=True)
        session.close()
    return {"rows": rows, "upload_size": size, "result_size": result_size, "job_id": job_id}


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2:])
    else:
        sys.exit("usage: transfers.py worker ... (run benchmarks/run.py instead)")
