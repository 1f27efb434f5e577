"""The support matrix (.ci/matrix.toml) and its lock files (.ci/locks/), for the shell scripts.

Stdlib only (it runs before any virtualenv exists), Python 3.11+. Subcommands:

- ``cells [KIND...]``: the cell names, one a line (kinds: full, compat, floors, preview; default all
  but preview). A cell is ``<airflow>-py<python>``, or ``floors-py<python>``.
- ``describe CELL``: ``<python> <airflow version> <kind>``.
- ``python VERSION``: the interpreter for a Python version (pyenv's, else ``pythonX.Y`` on the
  PATH); a clear error when the machine has none.
- ``lock [CELL|docs|release-tools ...]``: resolve the lock files again (needs PyPI; default: all).
- ``check``: every lock file exists and was resolved from today's pyproject.toml and matrix.
- ``policy``: the support table as Markdown (the README carries it; a test compares).
"""

from __future__ import annotations

import datetime
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MATRIX = ROOT / ".ci" / "matrix.toml"
LOCKS = ROOT / ".ci" / "locks"
#: Days after an Airflow release whose packages stand in for that release's constraints file.
CONSTRAINTS_AFTER_DAYS = 14
#: Locks resolve for the platform CI and these machines run on.
PLATFORM = "x86_64-unknown-linux-gnu"
TOOL_LOCKS = ("docs", "release-tools")
#: What scripts/release-check builds and checks the distributions with (hatchling: the build backend,
#: installed here so that the build runs without an isolated environment resolved at build time).
RELEASE_TOOLS = ["build>=1.2", "twine>=5", "hatchling>=1.25"]


class MatrixError(Exception):
    """A problem a developer must fix (missing interpreter, stale lock): printed without a traceback."""


@dataclass(frozen=True)
class Cell:
    name: str
    airflow: str
    python: str
    kind: str  # full, compat, floors or preview
    airflow_released: str

    @property
    def constraints_date(self) -> str:
        released = datetime.date.fromisoformat(self.airflow_released)
        return (released + datetime.timedelta(days=CONSTRAINTS_AFTER_DAYS)).isoformat()

    @property
    def lock(self) -> Path:
        return LOCKS / f"{self.name}.txt"


def _matrix() -> dict:
    with MATRIX.open("rb") as file:
        return tomllib.load(file)


def _project() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]


def airflow_floor() -> str:
    """The lowest apache-airflow that pyproject.toml declares (``apache-airflow>=X``)."""
    for requirement in _project()["dependencies"]:
        match = re.fullmatch(r"apache-airflow>=([\w.]+)(,.*)?", requirement.replace(" ", ""))
        if match:
            return match.group(1)
    raise MatrixError("pyproject.toml declares no apache-airflow>=X floor")


def cells() -> list[Cell]:
    matrix = _matrix()
    found = []
    for airflow in matrix["airflow"]:
        for python in airflow["pythons"]:
            if airflow.get("preview"):
                kind = "preview"
            elif airflow.get("full") == python:
                kind = "full"
            else:
                kind = "compat"
            name = f"{airflow['version']}-py{python}"
            found.append(Cell(name, airflow["version"], python, kind, airflow["released"]))
    floors = matrix["floors"]
    found.append(
        Cell(
            f"floors-py{floors['python']}",
            airflow_floor(),
            floors["python"],
            "floors",
            floors["airflow_released"],
        )
    )
    return found


def cell(name: str) -> Cell:
    for candidate in cells():
        if candidate.name == name:
            return candidate
    known = ", ".join(c.name for c in cells())
    raise MatrixError(f"no cell {name!r} in .ci/matrix.toml (cells: {known})")


def python_for(version: str) -> str:
    """The newest interpreter of ``version`` (e.g. "3.12"): pyenv's first, then the PATH."""
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    for root in filter(None, roots):
        candidates = glob.glob(f"{root}/versions/{version}.*/bin/python{version}")
        candidates = [c for c in candidates if re.search(rf"/{re.escape(version)}\.\d+/bin/", c)]
        if candidates:
            return max(candidates, key=lambda path: int(path.split("/")[-3].split(".")[2]))
    on_path = shutil.which(f"python{version}")
    if on_path:
        return on_path
    raise MatrixError(
        f"Python {version} is not on this machine (looked in pyenv's versions and for "
        f"python{version} on the PATH); the support matrix needs it. Install it (e.g. "
        f"`pyenv install {version}`), or run other cells: scripts/test-compat CELL..."
    )


# -- lock files -------------------------------------------------------------------------------------


def _floor_pins(extras: list[str]) -> list[str]:
    """``name==floor`` for each direct dependency declared ``name>=floor`` (markers kept)."""
    project = _project()
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    pins = []
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)>=([\w.]+)(\s*;.*)?", requirement.strip())
        if match:
            pins.append(f"{match.group(1)}=={match.group(2)}{match.group(3) or ''}")
    return pins


def _inputs_hash(name: str) -> str:
    """What a lock was resolved from: today's dependency lists and the matrix entry it serves."""
    project = _project()
    inputs: dict = {"optional": project["optional-dependencies"]}
    if name not in TOOL_LOCKS:
        inputs |= {
            "dependencies": project["dependencies"],
            "cell": cell(name).__dict__,
            "providers": _matrix()["constrained_providers"],
        }
    if name == "release-tools":
        inputs["tools"] = RELEASE_TOOLS
    text = json.dumps(inputs, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _uv(*args: str) -> None:
    uv = os.environ.get("UV", "uv")
    command = [uv, "pip", "compile", "--quiet", "--no-header", "--no-annotate", *args]
    command += ["--python-platform", PLATFORM]
    subprocess.run(command, check=True, env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})


def _write(path: Path, requirements: list[str], header: str, *args: str) -> None:
    with tempfile.TemporaryDirectory() as work:
        inputs = Path(work) / "requirements.in"
        inputs.write_text("\n".join(requirements) + "\n")
        _uv(str(inputs), *args)
    body = path.read_text()
    path.write_text(header + body)


def lock(name: str) -> None:
    LOCKS.mkdir(parents=True, exist_ok=True)
    today = datetime.date.today().isoformat()
    stamp = f"# inputs: {_inputs_hash(name)}\n"
    if name in TOOL_LOCKS:
        path = LOCKS / f"{name}.txt"
        wanted = _project()["optional-dependencies"]["docs"] if name == "docs" else RELEASE_TOOLS
        header = f"# {name}: resolved by `scripts/lock {name}` on {today} for Python 3.11; do not edit.\n"
        _write(path, wanted, header + stamp, "--python-version", "3.11", "-o", str(path))
        return
    target = cell(name)
    path = target.lock
    airflow = f"apache-airflow=={target.airflow}"
    # 1. The constraints stand-in: Airflow and its providers as of two weeks after its release.
    providers = _matrix()["constrained_providers"]
    python = ["--python-version", target.python]
    path.unlink(missing_ok=True)
    _write(
        path, [airflow, *providers], "", *python, "--exclude-newer", target.constraints_date, "-o", str(path)
    )
    # 2. This package and its test tools on top; the stand-in's pins are preferences (uv keeps an
    #    output file's versions unless a requirement forces another), as pip keeps what is installed.
    requirements = [airflow, f"-e {ROOT}[dev]"]
    if target.kind == "floors":
        # Each direct dependency at its declared floor, as hard pins.
        requirements += _floor_pins(_matrix()["floors"]["extras"])
    header = (
        f"# {target.name}: Airflow {target.airflow} on Python {target.python} ({target.kind}), resolved "
        f"by `scripts/lock {target.name}` on {today}:\n# Airflow and its providers as of "
        f"{target.constraints_date}, then this package's [dev] requirements; do not edit.\n"
    )
    _write(
        path,
        requirements,
        header + stamp,
        *python,
        "--no-emit-package",
        "airflow-provider-musicai",
        "-o",
        str(path),
    )


def stale() -> list[str]:
    """The locks that are missing or were resolved from other inputs than today's."""
    problems = []
    for name in [*(c.name for c in cells()), *TOOL_LOCKS]:
        path = LOCKS / f"{name}.txt"
        if not path.exists():
            problems.append(f".ci/locks/{path.name} is missing")
            continue
        match = re.search(r"^# inputs: (\w+)$", path.read_text(), re.MULTILINE)
        if not match or match.group(1) != _inputs_hash(name):
            problems.append(f".ci/locks/{path.name} was resolved from other requirements")
    return problems


# -- the policy table ---------------------------------------------------------------------------------


def policy() -> str:
    """The support table: one row an Airflow minor, what CI runs on each Python."""
    all_cells = [c for c in cells() if c.kind != "floors"]
    pythons = sorted({c.python for c in all_cells}, key=lambda v: tuple(map(int, v.split("."))))
    lines = [
        "| Airflow | " + " | ".join(f"Python {p}" for p in pythons) + " |",
        "|---|" + "---|" * len(pythons),
    ]
    for airflow in _matrix()["airflow"]:
        row = [f"{airflow['version']}" + (" (pre-release)" if airflow.get("preview") else "")]
        for python in pythons:
            found = [c for c in all_cells if c.airflow == airflow["version"] and c.python == python]
            kind = found[0].kind if found else ""
            row.append({"full": "whole suite", "compat": "compat suite", "preview": "tried", "": "n/a"}[kind])
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("cells", [])
    if command == "cells":
        kinds = set(args) or {"full", "compat", "floors"}
        print("\n".join(c.name for c in cells() if c.kind in kinds))
    elif command == "describe":
        found = cell(args[0])
        print(found.python, found.airflow, found.kind)
    elif command == "python":
        print(python_for(args[0]))
    elif command == "lock":
        for name in args or [*(c.name for c in cells()), *TOOL_LOCKS]:
            print(f"==> lock {name}", flush=True)
            lock(name)
    elif command == "check":
        problems = stale()
        if problems:
            raise MatrixError(
                "the lock files do not match pyproject.toml / .ci/matrix.toml:\n  "
                + "\n  ".join(problems)
                + "\nRun scripts/lock (it needs PyPI) and commit .ci/locks/."
            )
    elif command == "policy":
        print(policy())
    else:
        raise MatrixError(f"unknown command {command!r}; see scripts/_matrix.py's docstring")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except MatrixError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
