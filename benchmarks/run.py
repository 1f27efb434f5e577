"""Every benchmark of issue 4 against the emulator, in one run on one machine.

    python benchmarks/run.py            # full size (about 17 minutes on 2 cores)
    python benchmarks/run.py --quick    # smaller and faster timings (about 4 minutes)

Writes ``benchmarks/RESULTS.md`` (tables: median (min-max) over the runs), ``results.json`` (every
raw measurement) and ``requests_and_delay.png``. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_DIR, MIB, airflow_env, machine, other_load, spread, start_machine_load, versions

ALL_PARTS = ("transfers", "wait", "sweep", "parse", "list")


@dataclass
class Settings:
    """Sizes and repetitions of one benchmark run."""

    quick: bool
    file_size: int
    runs: int
    transfer_runs: int
    wait_jobs: int
    poll_interval: float
    sweep: tuple[int, ...]
    parse_reps: int
    list_jobs: int

    @classmethod
    def make(cls, quick: bool, runs: int | None) -> Settings:
        if quick:
            return cls(True, 256 * MIB, runs or 1, runs or 1, 1000, 2.0, (10, 100, 1000), 5, 2000)
        # Transfers are short and disk writes on a shared VM are noisy: 5 runs for them.
        return cls(False, 1 << 30, runs or 3, runs or 5, 1000, 10.0, (10, 100, 1000, 3000), 15, 10_000)


_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _T0:6.0f}s] {message}", file=sys.stderr, flush=True)


def _tiny_wav() -> bytes:
    import struct

    frames = b"\x00\x10" * 400  # 0.05 s of 16-bit mono at 8 kHz
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + len(frames))
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
        + b"data"
        + struct.pack("<I", len(frames))
    )
    return header + frames


def _input_url(emu: Any) -> str:
    """Upload a tiny WAV once; its download URL is every benchmark job's input."""
    import requests

    with requests.Session() as session:
        urls = session.get(emu.api_url + "/upload", headers=emu.headers(), timeout=30).json()
        session.put(urls["uploadUrl"], data=_tiny_wav(), timeout=30).raise_for_status()
    return str(urls["downloadUrl"])


def run_all(settings: Settings, work: Path, only: set[str]) -> dict[str, Any]:
    from airflow_provider_musicai.testing import EmulatorServer

    env = airflow_env(work / "airflow-home")
    os.environ.update(env)
    load = start_machine_load()
    results: dict[str, Any] = {
        "settings": asdict(settings),
        "machine": machine(),
        "versions": versions(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    shm = Path("/dev/shm")
    if "transfers" in only:
        import transfers

        # The emulator keeps its blobs in memory (tmpfs) so that its own disk writes add no noise;
        # the clients under test read and write the disk.
        storage = Path(tempfile.mkdtemp(prefix="musicai-bench-", dir=shm if shm.is_dir() else None))
        try:
            with EmulatorServer(storage_dir=storage) as emu:
                log(f"transfers: {settings.file_size // MIB} MiB, {settings.transfer_runs} runs")
                results["transfers"] = transfers.run_transfers(
                    emu, work, settings.file_size, settings.transfer_runs, env, log
                )
        finally:
            shutil.rmtree(storage, ignore_errors=True)
    if "wait" in only or "sweep" in only:
        import waiting

        with EmulatorServer() as emu:
            input_url = _input_url(emu)
            wait_rows: list[dict[str, Any]] = []
            if "wait" in only:
                for run in range(settings.runs):
                    shift = run % len(waiting.MODES)
                    for mode in waiting.MODES[shift:] + waiting.MODES[:shift]:
                        log(f"wait: {settings.wait_jobs} jobs, {mode}, run {run + 1}/{settings.runs}")
                        row = waiting.run_wait(
                            emu, mode, settings.wait_jobs, settings.poll_interval, env, input_url, log
                        )
                        wait_rows.append(row)
                        log(_wait_line(row))
            results["wait"] = wait_rows
            sweep_rows: list[dict[str, Any]] = []
            if "sweep" in only:
                for n in settings.sweep:
                    for mode in ("trigger", "per-job"):
                        if "wait" in only and n == settings.wait_jobs:
                            continue  # the table's runs give this point
                        log(f"sweep: {n} jobs, {mode}")
                        row = waiting.run_wait(emu, mode, n, settings.poll_interval, env, input_url, log)
                        sweep_rows.append(row)
                        log(_wait_line(row))
            results["sweep"] = sweep_rows
    if "parse" in only:
        import dag_parse

        log(f"DAG parsing: {settings.parse_reps} fresh interpreters per case")
        started = time.time()
        results["parse"] = dag_parse.run_dag_parse(settings.parse_reps, {**os.environ, **env}, log)
        results["parse"]["other_load_cores"] = other_load(started, time.time())
    if "list" in only:
        import listing

        with EmulatorServer() as emu:
            log(f"listing: {settings.list_jobs} jobs")
            results["listing"] = listing.run_listing(
                emu, settings.list_jobs, settings.runs, env, _input_url(emu), log
            )
    load.stop()
    results["machine_load"] = load.summary()
    results["duration_s"] = round(time.monotonic() - _T0)
    return results


def _wait_line(row: dict[str, Any]) -> str:
    return (
        f"  -> {row['events']}/{row['jobs']} events, steady {row['requests_steady_cycle']} req/cycle, "
        f"max window {row['requests_max_window']}, {row['connections_opened']} connections, "
        f"RSS +{row['rss_growth_mib']:.0f} MiB, p99 delay {row['delay_p99']:.1f}s, "
        f"emulator {row['emulator']['cpu_mean']:.0%} (max {row['emulator']['cpu_max']:.0%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="256 MiB files, 2 s polls, one run")
    parser.add_argument("--runs", type=int, default=None, help="runs per measured row (default 3)")
    parser.add_argument(
        "--only",
        default=",".join(ALL_PARTS),
        help="comma-separated subset of: transfers, wait, sweep, parse, list",
    )
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp folder)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="where RESULTS.md and the plot go")
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="only rewrite RESULTS.md and the plot from a results.json",
    )
    args = parser.parse_args()
    import report

    if args.from_json:
        results = json.loads(args.from_json.read_text())
    else:
        settings = Settings.make(args.quick, args.runs)
        only = {part.strip() for part in args.only.split(",") if part.strip()}
        work = args.work or Path(tempfile.mkdtemp(prefix="musicai-bench-"))
        work.mkdir(parents=True, exist_ok=True)
        try:
            results = run_all(settings, work, only)
        finally:
            if args.work is None:
                shutil.rmtree(work, ignore_errors=True)
        options = [*(["--quick"] if args.quick else []), *([f"--runs {args.runs}"] if args.runs else [])]
        if only != set(ALL_PARTS):
            options.append(f"--only {','.join(part for part in ALL_PARTS if part in only)}")
        results["command"] = " ".join(["python benchmarks/run.py", *options])
        (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    report.write(results, args.out)
    log(f"wrote {args.out / 'RESULTS.md'}")
    print(spread([results.get("duration_s", 0)]).fmt(0, " s"))


if __name__ == "__main__":
    main()
