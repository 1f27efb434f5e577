"""RESULTS.md and requests_and_delay.png from the measurements of run.py."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import MIB, Spread, spread

MODE_NAMES = {
    "trigger": "MusicAIJobTrigger (TriggerRunner)",
    "per-job": "per-job trigger, new httpx2 client per poll (dbt Cloud pattern)",
    "sdk-threads": "musicai-sdk wait_for_job_completion, one thread per job",
}
SHORT_NAMES = {"per-job": "per-job client", "sdk-threads": "SDK threads"}
ANALYSIS = Path(__file__).with_name("analysis.md")
#: Rows of the benchmarks run on their own, not by run.py (3b, 3c, 6, 7...), kept by hand: their
#: headline rows (the table lines before the first heading) and their sections. run.py rewrites
#: RESULTS.md around them and never loses them.
STANDALONE = Path(__file__).with_name("standalone.md")
POOL_SIZE = 10

Row = dict[str, Any]


def row(*cells: object) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def header(*names: str) -> list[str]:
    return [row(*names), row(*(["---"] * len(names)))]


def verdict(misses: list[str]) -> str:
    return f"**missed**: {'; '.join(misses)}" if misses else "**met**"


def values(rows: list[Row], key: str | Callable[[Row], float]) -> Spread:
    getter: Callable[[Row], float] = key if callable(key) else (lambda item: float(item[key]))
    return spread(getter(item) for item in rows)


def by_mode(rows: list[Row]) -> dict[str, list[Row]]:
    found: dict[str, list[Row]] = {}
    for item in rows:
        found.setdefault(item["mode"], []).append(item)
    return found


# -- transfers ----------------------------------------------------------------------------------


def transfer_headline(data: dict[str, Any], kind: str) -> list[str]:
    rows = data["rows"]
    if kind == "upload":
        hook, curl, sdk = (
            rows[f"upload: {n}"] for n in ("hook.upload_file", "curl -T", "musicai-sdk upload_file")
        )
    else:
        names = ("hook.download_results", "curl -o (same folder)", "musicai-sdk download_file")
        hook, curl, sdk = (rows[f"download: {n}"] for n in names)
    ratio = values(hook, "wall").median / values(curl, "wall").median
    paired = spread(h["wall"] / c["wall"] for h, c in zip(hook, curl, strict=False))
    growth = values(hook, "rss_growth_mib").max
    provider = (
        f"hook {values(hook, 'wall').fmt(2)} s = **{ratio:.2f}x curl** (run by run: {paired.fmt(2)}); "
        f"RSS growth **{growth:.0f} MiB** (worst run)"
    )
    compared = (
        f"curl {values(curl, 'wall').fmt(2)} s; musicai-sdk {values(sdk, 'wall').fmt(2)} s, "
        f"RSS growth {values(sdk, 'rss_growth_mib').fmt(0)} MiB"
    )
    if kind == "download":
        compared += f"; curl to /dev/null {values(rows['download: curl -o /dev/null'], 'wall').fmt(2)} s"
    misses = []
    if growth > 64:
        misses.append(f"RSS {growth:.0f} MiB > 64 MiB")
    if ratio > 1.25:
        misses.append(f"{ratio:.2f}x curl > 1.25x ({100 * (ratio / 1.25 - 1):.0f}% over)")
    return [provider, compared, verdict(misses)]


def load_text(rows: list[Row]) -> str:
    """Cores used by other processes on the machine during these measurements."""
    found = [float(item["other_load_cores"]) for item in rows if item.get("other_load_cores") is not None]
    return spread(found).fmt(2) if found else "-"


def transfer_section(data: dict[str, Any]) -> list[str]:
    runs = len(next(iter(data["rows"].values())))
    lines = [
        f"## 1-2. Transfers of {data['upload_size'] / MIB:.0f} MiB ({runs} runs)",
        "",
        "Each row runs in a fresh process per run (hook and SDK: a Python worker; curl: the binary), in",
        "rotating order, after `sync`. Wall time covers the transfer only (for the hook and the SDK,",
        "`GET /upload` + PUT), not interpreter start-up. RSS growth = peak `ru_maxrss` minus the RSS just",
        "before the transfer; for curl, its whole peak RSS (`VmHWM`). Emulator CPU = its user + system",
        "time during the transfer / wall time (100% = one core). Other load = CPU used by processes",
        "outside the benchmark during the row (other people's test suites, say), in cores.",
        "",
        *header(
            "row",
            "wall (s)",
            "MB/s",
            "RSS growth (MiB)",
            "client CPU (s)",
            "emulator CPU",
            "other load (cores)",
        ),
    ]
    for name, runs in data["rows"].items():
        growth = values(runs, "rss_growth_mib").fmt(0) + (" (whole process)" if "curl" in name else "")
        emulator = (
            "-" if "loopback" in name else values(runs, lambda r: r["emulator_cpu_share"] * 100).fmt(0, "%")
        )
        lines.append(
            row(
                name,
                values(runs, "wall").fmt(2),
                values(runs, "throughput_mb_s").fmt(0),
                growth,
                values(runs, "cpu").fmt(2),
                emulator,
                load_text(runs),
            )
        )
    return [*lines, ""]


# -- waiting ------------------------------------------------------------------------------------


def wait_headline(rows: list[Row], poll: float) -> list[str]:
    modes = by_mode(rows)
    ours = modes.get("trigger", [])
    if not ours:
        return ["not measured", "", ""]
    steady = values(ours, "requests_steady_cycle")
    connections = values(ours, "connections_opened")
    growth = values(ours, "rss_growth_mib")
    p99 = values(ours, "delay_p99")
    provider = (
        f"**{steady.fmt(0)}** requests/cycle "
        f"(busiest interval {values(ours, 'requests_max_window').fmt(0)}), "
        f"**{connections.max:.0f}** connections, RSS **+{growth.max:.0f} MiB**, p99 delay **{p99.fmt(1)} s**"
    )
    others = [
        f"{SHORT_NAMES[mode]}: {values(runs, 'requests_steady_cycle').fmt(0)} requests/cycle, "
        f"{values(runs, 'connections_opened').fmt(0)} connections, "
        f"RSS +{values(runs, 'rss_growth_mib').fmt(0)} MiB, p99 {p99_text(runs)} s"
        for mode, runs in modes.items()
        if mode != "trigger"
    ]
    misses = []
    if steady.median > 20:
        misses.append(f"{steady.median:.0f} requests/cycle > 20")
    if connections.max > POOL_SIZE:
        misses.append(f"{connections.max:.0f} connections > {POOL_SIZE}")
    if growth.max > 100:
        misses.append(f"RSS +{growth.max:.0f} MiB > 100 MiB")
    if p99.median > poll + 1:
        misses.append(f"p99 {p99.median:.1f} s > {poll + 1:.0f} s (by {p99.median - poll - 1:.1f} s)")
    if any(item["jobs_with_one_event"] != item["jobs"] for item in ours):
        misses.append("not exactly one event per job")
    return [provider, "; ".join(others), verdict(misses)]


def p99_text(runs: list[Row]) -> str:
    """p99 delay; '>=' when a run was cut off before every job had its event."""
    text = values(runs, "delay_p99").fmt(1)
    return f">= {text}" if any(item.get("events_missing_at_cutoff") for item in runs) else text


def wait_section(rows: list[Row], jobs: int, poll: float) -> list[str]:
    lines = [
        f"## 3. {jobs} jobs waited on at once (poll interval {poll:.0f} s)",
        "",
        "Jobs are created first (emulator timings set for 50 batches) so that all of them stay active",
        "for the first 2 poll intervals after the waiters start, then finish evenly over the next 2.",
        "Requests are the emulator's `GET /v1/job*` counters, sampled every second. 'All jobs active' is",
        "the second interval (the first includes registration); 'busiest' is the largest interval, when",
        "finished jobs are confirmed one by one. Delay = time of the event (appended to the",
        "TriggerRunner's event queue, or the SDK call returning) minus the job's `completedAt`.",
        "",
        *header(
            "way of waiting",
            "jobs with exactly one event",
            "requests per cycle, all jobs active",
            "busiest interval",
            "total requests",
            "TCP connections opened",
            "RSS growth (MiB)",
            "delay p50 (s)",
            "delay p99 (s)",
            "delay max (s)",
            "waiter CPU (s)",
            "emulator CPU mean / max",
            "other load (cores)",
        ),
    ]
    for mode, runs in by_mode(rows).items():
        lines.append(
            row(
                MODE_NAMES[mode],
                f"{values(runs, 'jobs_with_one_event').fmt(0)} of {runs[0]['jobs']}",
                values(runs, "requests_steady_cycle").fmt(0),
                values(runs, "requests_max_window").fmt(0),
                values(runs, "requests_total").fmt(0),
                values(runs, "connections_opened").fmt(0),
                values(runs, "rss_growth_mib").fmt(0),
                values(runs, "delay_p50").fmt(1),
                p99_text(runs),
                values(runs, "delay_max").fmt(1),
                values(runs, "cpu_seconds").fmt(1),
                values(runs, lambda r: r["emulator"]["cpu_mean"] * 100).fmt(0, "%")
                + " / "
                + values(runs, lambda r: r["emulator"]["cpu_max"] * 100).fmt(0, "%"),
                load_text(runs),
            )
        )
    lines.append("")
    with_stats = [item for item in rows if item["mode"] == "trigger" and item.get("poller")]
    if with_stats:
        cycles = with_stats[0]["poller"][0]["requests_per_cycle"]
        lines += [f"The shared poller's own count of requests per cycle (first run): {cycles}.", ""]
    return lines


def sweep_points(results: dict[str, Any]) -> dict[str, dict[int, list[Row]]]:
    points: dict[str, dict[int, list[Row]]] = {}
    for item in [*results.get("wait", []), *results.get("sweep", [])]:
        if item["mode"] in ("trigger", "per-job"):
            points.setdefault(item["mode"], {}).setdefault(item["jobs"], []).append(item)
    return points


def sweep_section(points: dict[str, dict[int, list[Row]]]) -> list[str]:
    lines = [
        "## Requests and p99 delay against the number of jobs",
        "",
        *header(
            "jobs",
            "way",
            "requests per cycle, all active",
            "busiest interval",
            "connections",
            "RSS growth (MiB)",
            "p99 delay (s)",
            "emulator CPU max",
            "other load (cores)",
            "runs",
        ),
    ]
    for mode, by_n in points.items():
        for n in sorted(by_n):
            runs = by_n[n]
            lines.append(
                row(
                    n,
                    MODE_NAMES[mode],
                    values(runs, "requests_steady_cycle").fmt(0),
                    values(runs, "requests_max_window").fmt(0),
                    values(runs, "connections_opened").fmt(0),
                    values(runs, "rss_growth_mib").fmt(0),
                    p99_text(runs),
                    values(runs, lambda r: r["emulator"]["cpu_max"] * 100).fmt(0, "%"),
                    load_text(runs),
                    len(runs),
                )
            )
    return [*lines, ""]


def _median(rows: list[Row], key: str) -> float:
    found = [float(item[key]) for item in rows if item.get(key) is not None]
    return statistics.median(found) if found else float("nan")


def plot(
    points: dict[str, dict[int, list[Row]]], poll: float, out: Path, scale: list[Row] | None = None
) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {
        "trigger": ("tab:blue", "o", "shared poller (MusicAIJobTrigger)"),
        "per-job": ("tab:red", "s", "per-job trigger, new client per poll"),
    }
    for mode, by_n in points.items():
        color, marker, label = styles[mode]
        ns = sorted(by_n)
        steady = [_median(by_n[n], "requests_steady_cycle") for n in ns]
        busiest = [_median(by_n[n], "requests_max_window") for n in ns]
        left.plot(ns, steady, marker=marker, color=color, label=f"{label}: all jobs active")
        left.plot(
            ns, busiest, marker=marker, color=color, linestyle="--", alpha=0.5, label=f"{label}: busiest"
        )
        right.plot(ns, [_median(by_n[n], "delay_p99") for n in ns], marker=marker, color=color, label=label)
    for item in scale or []:  # row 3b, measured alone at its own poll interval
        label = f"row 3b, {item['mode']}, poll {item['poll_interval']:.0f} s"
        marker = "*" if item["mode"] == "trigger" else "P"
        left.plot(
            [item["jobs"]],
            [item["requests_steady_cycle"]],
            marker=marker,
            color="tab:green",
            linestyle="none",
            markersize=10,
            label=label,
        )
        right.plot(
            [item["jobs"]],
            [item["delay_p99"]],
            marker=marker,
            color="tab:green",
            linestyle="none",
            markersize=10,
            label=label,
        )
    left.axhline(20, color="gray", linestyle=":", label="goal: 20 requests per cycle")
    right.axhline(
        poll + 1, color="gray", linestyle=":", label=f"goal: poll interval + 1 s = {poll + 1:.0f} s"
    )
    for axis in (left, right):
        axis.set_xscale("log")
        axis.set_xlabel("jobs waited on at once")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    left.set_yscale("log")
    left.set_ylabel("API requests per poll interval")
    left.set_title("Requests per poll cycle")
    right.set_ylabel("p99 delay, job completion to event (s)")
    right.set_title(f"p99 delay (poll interval {poll:.0f} s)")
    figure.tight_layout()
    name = "requests_and_delay.png"
    figure.savefig(out / name, dpi=110)
    plt.close(figure)
    return name


# -- one triggerer at scale, triggerer restart ----------------------------------------------------


def _cpu_per_cycle(item: Row) -> float:
    cycles = sum(poller["cycles"] for poller in item.get("poller", [])) or 1
    return float(item.get("cpu_seconds", float("nan"))) / cycles


def scale_headline(scale: dict[str, Any]) -> list[str]:
    """Row 3b: 10,000 deferred waits in one triggerer (create-job triggers and sensors)."""
    parts = []
    for item in scale["rows"]:
        cut = " (cut off: >=)" if item.get("events_missing_at_cutoff") else ""
        parts.append(
            f"{item['mode']}: **{item['requests_steady_cycle']}** requests/cycle while all are active "
            f"(busiest interval {item.get('requests_max_window', max(item['requests_per_window']))}), "
            f"RSS **+{item.get('rss_growth_mib', float('nan')):.0f} MiB**, "
            + (f"CPU {_cpu_per_cycle(item):.2f} s/cycle, " if "cpu_seconds" in item else "")
            + f"p99 delay {item['delay_p99']:.0f} s{cut}"
        )
    return ["; ".join(parts), "as row 3: about 10,000 requests/cycle for a per-job poll"]


def restart_headline(restart: dict[str, Any]) -> list[str]:
    """Row 3c: the first poll cycle of a triggerer that takes over 10,000 deferred waits."""
    parts = [
        f"{item['mode']}: first cycle **{item['first_cycle_requests']}** requests "
        f"({item['finished_before_start']} jobs finished while it was down)"
        for item in restart["rows"]
    ]
    misses = [
        f"{item['mode']}: {item['first_cycle_requests']} > pages + finished"
        for item in restart["rows"]
        if (item["first_cycle_requests"] or 0)
        > -(-(item["jobs"] - item["finished_before_start"]) // 100) + 1 + item["finished_before_start"]
    ]
    return ["; ".join(parts), "one request per task: 10,000", verdict(misses)]


def scale_section(scale: dict[str, Any], restart: dict[str, Any] | None) -> list[str]:
    lines = [
        "## 3b-3c. 10,000 deferred waits in one triggerer, and a triggerer restart",
        "",
        f"Run alone (not by `run.py`): `{scale['command']}`"
        + (f" and `{restart['command']}`" if restart else "")
        + f", {scale['started']}. The harness of row 3 (Airflow's `TriggerRunner` in one process).",
        "",
        *header(
            "row",
            "mode",
            "jobs",
            "poll (s)",
            "events",
            "requests/cycle, all active",
            "busiest interval",
            "requests per cycle (poller)",
            "RSS growth (MiB)",
            "CPU per cycle (s)",
            "p99 delay (s)",
        ),
    ]
    tables = [("3b", item) for item in scale["rows"]]
    tables += [("3c", item) for item in (restart or {}).get("rows", [])]
    for name, item in tables:
        cycles = [cycle for poller in item.get("poller", []) for cycle in poller["requests_per_cycle"]]
        cycles = cycles or item.get("requests_per_cycle", [])
        lines.append(
            row(
                name,
                item["mode"] + (f", {item['finished_before_start']} done first" if name == "3c" else ""),
                item["jobs"],
                f"{item['poll_interval']:.0f}",
                item["events"],
                item.get("requests_steady_cycle", "-"),
                item.get("requests_max_window", "-"),
                ", ".join(str(cycle) for cycle in cycles[:8]),
                f"{item.get('rss_growth_mib', float('nan')):.0f}",
                f"{_cpu_per_cycle(item):.2f}" if "cpu_seconds" in item else "-",
                f"{item['delay_p99']:.0f}",
            )
        )
    lines += ["", *scale.get("notes", []), ""]
    return lines


# -- DAG parsing, listing -----------------------------------------------------------------------


def parse_headline(parse: dict[str, Any]) -> list[str]:
    ours = spread(v * 1000 for v in parse["musicai operators + sensors"]["added"])
    sdk = spread(v * 1000 for v in parse["airflow.sdk alone"]["sdk"])
    dbt = spread(v * 1000 for v in parse["dbt Cloud operators"]["added"])
    misses = [f"+{ours.median:.1f} ms > 25 ms"] if ours.median > 25 else []
    return [
        f"**+{ours.fmt(1)} ms** over airflow.sdk",
        f"airflow.sdk alone {sdk.fmt(0)} ms; dbt Cloud operators +{dbt.fmt(0)} ms",
        verdict(misses),
    ]


def parse_section(parse: dict[str, Any]) -> list[str]:
    lines = [
        f"## 4. DAG parsing ({len(parse['airflow.sdk alone']['sdk'])} fresh interpreters per case)",
        "",
        "Each sample is a `python -c` that imports `airflow.sdk`, then the modules, timing both steps",
        "with `perf_counter`. Cases interleaved, after one warm-up each (bytecode cached).",
        "",
        *header("case", "import airflow.sdk (ms)", "added by the modules (ms)", "heavy libraries loaded"),
    ]
    for name in ("airflow.sdk alone", "musicai operators + sensors", "dbt Cloud operators"):
        case = parse[name]
        lines.append(
            row(
                name,
                spread(v * 1000 for v in case["sdk"]).fmt(0),
                spread(v * 1000 for v in case["added"]).fmt(1),
                ", ".join(case["heavy"]) or "none",
            )
        )
    slowest = ", ".join(f"`{name.strip()}` {us / 1000:.1f} ms" for name, us in parse["importtime_top"][:5])
    return [
        *lines,
        "",
        f"Slowest imports of the provider's modules (`-X importtime`, cumulative): {slowest}.",
        "",
    ]


def listing_headline(listing: dict[str, list[Row]]) -> list[str]:
    stream, kept = listing["stream"], listing["materialize"]
    jobs = stream[0]["jobs"]
    requests = values(stream, "requests")
    peak = values(stream, "tracemalloc_peak_mib")
    pages = -(-jobs // 100)
    needed = pages + (1 if jobs % 100 == 0 else 0)  # a full last page needs one more (empty) page
    misses = []
    if requests.max > needed:
        misses.append(f"{requests.max:.0f} requests > {needed}")
    if peak.max > 4:
        misses.append(f"peak {peak.max:.1f} MiB is not flat")
    note = f" ({pages} pages + 1 empty page that proves the end)" if needed > pages else ""
    return [
        f"**{requests.fmt(0)} requests**{note}, tracemalloc peak **{peak.fmt(2)} MiB** while streaming",
        f"the same documents kept in a list: {values(kept, 'tracemalloc_peak_mib').fmt(1)} MiB",
        verdict(misses),
    ]


def listing_section(listing: dict[str, list[Row]]) -> list[str]:
    lines = [
        "## 5. Listing jobs",
        "",
        *header(
            "mode",
            "jobs",
            "requests",
            "wall (s)",
            "tracemalloc peak (MiB)",
            "peak after the first page (MiB)",
            "RSS growth (MiB)",
        ),
    ]
    for mode, runs in listing.items():
        lines.append(
            row(
                mode,
                runs[0]["jobs"],
                values(runs, "requests").fmt(0),
                values(runs, "wall").fmt(2),
                values(runs, "tracemalloc_peak_mib").fmt(2),
                values(runs, "tracemalloc_peak_first_page_mib").fmt(2),
                values(runs, "rss_growth_mib").fmt(1),
            )
        )
    return [*lines, ""]


# -- the whole file -----------------------------------------------------------------------------


def standalone() -> tuple[dict[str, str], list[str]]:
    """The hand-kept headline rows (by row id) and sections of :data:`STANDALONE`."""
    if not STANDALONE.exists():
        return {}, []
    text = STANDALONE.read_text().splitlines()
    first = next((i for i, line in enumerate(text) if line.startswith("## ")), len(text))
    rows = {_row_id(line): line for line in text[:first] if line.startswith("| ")}
    return rows, [*text[first:], ""]


def _row_id(line: str) -> str:
    return line.split("|")[1].strip()


def _row_order(line: str) -> tuple[int, str]:
    """Headline order: 1, 2, 3, 3b, 3c, 4..."""
    ident = _row_id(line)
    digits = "".join(itertools.takewhile(str.isdigit, ident))
    return int(digits or 0), ident


def write(results: dict[str, Any], out: Path) -> None:
    settings = results["settings"]
    poll = float(settings["poll_interval"])
    machine = results["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `{results.get('command', 'python benchmarks/run.py')}` on {results['started']},",
        f"in {results.get('duration_s', 0) / 60:.1f} minutes, everything against the Music AI emulator on",
        "loopback, one machine, one run. Figures are **median (min-max)** over "
        f"{settings['runs']} run(s) unless marked otherwise.",
        "Raw measurements: [`results.json`](results.json).",
        "",
        f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB RAM, "
        f"Linux {machine['kernel']}, Python {machine['python']}.",
        "",
    ]
    if "machine_load" in results:
        load = results["machine_load"]
        lines += [
            f"Other processes on the machine used {load['mean_cores']:.2f} cores on average during the run "
            f"(max {load['max_cores']:.2f}; more than half a core "
            f"{100 * load['share_of_time_above_half_a_core']:.0f}% of the time): see the 'other load'",
            "columns.",
            "",
        ]
    if settings["quick"]:
        lines += [
            "> **--quick run**: smaller file, 2 s poll interval, one run. Not the reference figures.",
            "",
        ]
    lines += [
        "## Headline",
        "",
        *header("#", "what", "the provider", "compared with, same run", "goal", "verdict"),
    ]
    first_row = len(lines)
    if "transfers" in results:
        data = results["transfers"]
        goal = "RSS growth <= 64 MiB, wall <= 1.25x curl"
        lines.append(
            row(
                1,
                f"upload {data['upload_size'] / MIB:.0f} MiB",
                *transfer_headline(data, "upload")[:2],
                goal,
                transfer_headline(data, "upload")[2],
            )
        )
        download = transfer_headline(data, "download")
        lines.append(
            row(2, f"download a {data['result_size'] / MIB:.0f} MiB result", *download[:2], goal, download[2])
        )
    if results.get("wait"):
        wait = wait_headline(results["wait"], poll)
        goal = (
            f"<= 20 requests/cycle, connections <= {POOL_SIZE} (the pool), RSS <= +100 MiB, "
            f"p99 <= {poll + 1:.0f} s"
        )
        what = f"{settings['wait_jobs']} jobs waited on at once, poll {poll:.0f} s"
        lines.append(row(3, what, *wait[:2], goal, wait[2]))
    if "scale" in results:
        scale = scale_headline(results["scale"])
        lines.append(row("3b", "10,000 deferred waits in one triggerer", *scale, "-", "measured"))
    if "restart" in results:
        restart = restart_headline(results["restart"])
        goal = "listing pages + jobs finished meanwhile, never one request per task"
        what = "triggerer restart with 10,000 deferred tasks"
        lines.append(row("3c", what, *restart[:2], goal, restart[2]))
    if "parse" in results:
        parse = parse_headline(results["parse"])
        lines.append(row(4, "DAG parsing: import operators + sensors", *parse[:2], "<= +25 ms", parse[2]))
    if "listing" in results:
        listing = listing_headline(results["listing"])
        jobs = results["listing"]["stream"][0]["jobs"]
        lines.append(row(5, f"list {jobs:,} jobs", *listing[:2], "100 requests, memory flat", listing[2]))
    kept_rows, kept_sections = standalone()
    headline = {_row_id(line): line for line in lines[first_row:]} | kept_rows
    lines[first_row:] = sorted(headline.values(), key=_row_order)
    lines.append("")
    points = sweep_points(results)
    if points:
        image = plot(points, poll, out, results.get("scale", {}).get("rows"))
        lines += [f"![requests per poll cycle and p99 delay against jobs]({image})", ""]
    if ANALYSIS.exists():
        lines += [ANALYSIS.read_text().rstrip(), ""]
    if "transfers" in results:
        lines += transfer_section(results["transfers"])
    if results.get("wait"):
        lines += wait_section(results["wait"], settings["wait_jobs"], poll)
    if points:
        lines += sweep_section(points)
    if "scale" in results and not kept_sections:
        lines += scale_section(results["scale"], results.get("restart"))
    if "parse" in results:
        lines += parse_section(results["parse"])
    if "listing" in results:
        lines += listing_section(results["listing"])
    lines += kept_sections
    lines += ["## Versions compared", "", *header("package", "version")]
    lines += [row(name, version) for name, version in results["versions"].items()]
    (out / "RESULTS.md").write_text("\n".join(lines) + "\n")
