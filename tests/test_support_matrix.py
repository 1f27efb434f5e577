"""The support policy is one table: .ci/matrix.toml. The README, the package metadata and the lock
files that CI builds from all agree with it, and a missing interpreter is an error, never a skip."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.airflow_independent

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "scripts" / "_matrix.py"


@pytest.fixture(scope="module")
def matrix() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_matrix", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_matrix"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def run_matrix(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, check=False
    )


def test_the_readme_carries_the_policy_table_of_the_matrix(matrix: ModuleType) -> None:
    readme = (ROOT / "README.md").read_text()
    assert matrix.policy() in readme, "README.md's support table differs from `scripts/_matrix.py policy`"


def test_the_package_metadata_admits_exactly_the_matrix_pythons(matrix: ModuleType) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pythons = sorted({cell.python for cell in matrix.cells() if cell.kind != "preview"})
    assert project["requires-python"] == f">={pythons[0]}"
    classifiers = {
        c.rsplit(" ", 1)[-1] for c in project["classifiers"] if re.fullmatch(r".*Python :: 3\.\d+", c)
    }
    assert classifiers == set(pythons)


def test_every_supported_airflow_minor_has_a_cell_per_python_and_the_floor_is_tested(
    matrix: ModuleType,
) -> None:
    cells = matrix.cells()
    kinds = {cell.kind for cell in cells}
    assert kinds == {"full", "compat", "floors", "preview"}
    floor = matrix.airflow_floor()
    tested_minors = {cell.airflow.rsplit(".", 1)[0] for cell in cells if cell.kind in ("full", "compat")}
    assert floor.rsplit(".", 1)[0] in tested_minors, "the Airflow floor's minor has no cell"
    assert [cell.airflow for cell in cells if cell.kind == "floors"] == [floor]


def test_every_lock_file_was_resolved_from_todays_requirements() -> None:
    result = run_matrix("check")
    assert result.returncode == 0, result.stderr


def test_a_lock_resolved_from_other_requirements_is_refused(
    matrix: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    locks = tmp_path / "locks"
    locks.mkdir()
    for lock in (ROOT / ".ci" / "locks").glob("*.txt"):
        (locks / lock.name).write_text(lock.read_text())
    first = sorted(locks.glob("3.*.txt"))[0]
    first.write_text(re.sub(r"^# inputs: \w+$", "# inputs: 0000", first.read_text(), flags=re.MULTILINE))
    (locks / "docs.txt").unlink()
    monkeypatch.setattr(matrix, "LOCKS", locks)
    problems = matrix.stale()
    assert problems == [
        f".ci/locks/{first.name} was resolved from other requirements",
        ".ci/locks/docs.txt is missing",
    ]


def test_each_cell_lock_pins_its_airflow_and_every_package(matrix: ModuleType) -> None:
    for cell in matrix.cells():
        pins = dict(
            line.split("==", 1)
            for line in cell.lock.read_text().splitlines()
            if line and not line.startswith(("#", " "))
        )
        assert pins["apache-airflow"] == cell.airflow, cell.name
        assert "airflow-provider-musicai" not in pins, "the package itself is installed editable"
        assert all(re.fullmatch(r"[\w.+!]+( ; .*)?", version) for version in pins.values()), cell.name


def test_the_floors_cell_pins_each_direct_dependency_at_its_floor(matrix: ModuleType) -> None:
    (floors,) = [cell for cell in matrix.cells() if cell.kind == "floors"]
    pins = floors.lock.read_text()
    for pin in matrix._floor_pins(
        tomllib.loads((ROOT / ".ci" / "matrix.toml").read_text())["floors"]["extras"]
    ):
        name, version = pin.split(";")[0].strip().split("==")
        assert re.search(rf"^{re.escape(name)}=={re.escape(version)}(\.0)*$", pins, re.MULTILINE), pin


def test_a_missing_interpreter_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path)}
    result = run_matrix("python", "3.99", env=env)
    assert result.returncode == 2
    assert "Python 3.99 is not on this machine" in result.stderr
    assert "pyenv install 3.99" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_cell_names_the_known_ones() -> None:
    result = run_matrix("describe", "9.9.9-py3.11")
    assert result.returncode == 2
    assert "no cell '9.9.9-py3.11'" in result.stderr and "3.3.2-py3.11" in result.stderr
