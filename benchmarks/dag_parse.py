"""Row 4: what importing the provider costs a DAG file, in a fresh interpreter each time.

Each sample is a new ``python -c`` process that imports ``airflow.sdk`` (what every Airflow 3 DAG
file does first) and then the module(s) under test, timing both steps with ``perf_counter``. The
added cost of a provider is the second step. One extra ``-X importtime`` run lists the provider
modules' own imports, and the heavy libraries a DAG file would pull in are checked by name.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from common import spread

CASES: dict[str, list[str]] = {
    "airflow.sdk alone": [],
    "musicai operators + sensors": [
        "airflow_provider_musicai.operators.musicai",
        "airflow_provider_musicai.sensors.musicai",
    ],
    "dbt Cloud operators": ["airflow.providers.dbt.cloud.operators.dbt"],
}

#: Libraries that a DAG file should not pay for (they load when a task runs).
HEAVY = ("httpx2", "httpx", "requests", "fsspec", "cryptography", "urllib3", "aiohttp", "musicai_sdk")

_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
for name in {modules!r}:
    __import__(name)
t2 = time.perf_counter()
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print(json.dumps({{"sdk": t1 - t0, "added": t2 - t1, "heavy": heavy}}))
"""


def _sample(modules: list[str], env: dict[str, str], cwd: str) -> dict[str, Any]:
    code = _PROBE.format(modules=modules, heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, check=True
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def _importtime(modules: list[str], env: dict[str, str], cwd: str) -> list[tuple[str, float]]:
    """The slowest imports (cumulative µs) made by ``modules`` once airflow.sdk is loaded."""
    code = "import sys, airflow.sdk\nsys.stderr.write('MARK\\n')\n" + "".join(
        f"import {name}\n" for name in modules
    )
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=True,
    ).stderr
    after = err.split("MARK\n", 1)[-1]
    rows: list[tuple[str, float]] = []
    for line in after.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
            if cumulative.isdigit():
                rows.append((name, float(cumulative)))
    rows.sort(key=lambda row: -row[1])
    return rows[:8]


def run_dag_parse(reps: int, env: dict[str, str], log: Callable[[str], None]) -> dict[str, Any]:
    """``reps`` interleaved samples of every case; seconds."""
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in CASES}
    with tempfile.TemporaryDirectory(prefix="musicai-bench-parse-") as cwd:
        for modules in CASES.values():  # warm the page cache and __pycache__ once
            _sample(modules, env, cwd)
        for _ in range(reps):
            for name, modules in CASES.items():
                samples[name].append(_sample(modules, env, cwd))
        importtime = _importtime(CASES["musicai operators + sensors"], env, cwd)
    result: dict[str, Any] = {}
    for name, rows in samples.items():
        result[name] = {
            "sdk": [row["sdk"] for row in rows],
            "added": [row["added"] for row in rows],
            "heavy": rows[-1]["heavy"],
        }
        sdk = spread(row["sdk"] * 1000 for row in rows)
        added = spread(row["added"] * 1000 for row in rows)
        log(f"  {name}: airflow.sdk {sdk.fmt(0)} ms, added {added.fmt(1)} ms")
    result["importtime_top"] = importtime
    return result
