"""scripts/_release_check.py refuses a wheel that carries anything but the package and its metadata."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "_release_check.py"
PACKAGE_FILES = [
    "airflow_provider_musicai/__init__.py",
    "airflow_provider_musicai/py.typed",
    "airflow_provider_musicai/get_provider_info.py",
    "airflow_provider_musicai-0.1.0.dist-info/METADATA",
]


@pytest.fixture(scope="module")
def release_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_release_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_wheel(folder: Path, names: list[str]) -> str:
    path = folder / "airflow_provider_musicai-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name in names:
            wheel.writestr(name, "")
    return str(path)


def test_a_wheel_of_the_package_alone_passes(release_check: ModuleType, tmp_path: Path) -> None:
    release_check.wheel_contents(make_wheel(tmp_path, PACKAGE_FILES))


@pytest.mark.parametrize(
    "extra",
    [
        "tests/test_hook.py",
        "benchmarks/RESULTS.md",
        "example_dags/example_musicai_chain.py",
        "example_output/summary.json",
        "airflow_provider_musicai/__pycache__/jobs.cpython-311.pyc",
        "airflow_provider_musicai/tests/conftest.py",
        "docs/conf.py",
    ],
)
def test_anything_else_fails(release_check: ModuleType, tmp_path: Path, extra: str) -> None:
    with pytest.raises(AssertionError, match="wheel"):
        release_check.wheel_contents(make_wheel(tmp_path, [*PACKAGE_FILES, extra]))


def test_a_wheel_without_the_type_marker_fails(release_check: ModuleType, tmp_path: Path) -> None:
    names = [name for name in PACKAGE_FILES if not name.endswith("py.typed")]
    with pytest.raises(AssertionError, match=r"py\.typed"):
        release_check.wheel_contents(make_wheel(tmp_path, names))


def test_requirements_leave_extras_out(
    release_check: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metadata = "Name: x\nRequires-Dist: requests>=2.31\nRequires-Dist: fastapi>=0.110; extra == 'emulator'\n"
    wheel = tmp_path / "x.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("x-1.dist-info/METADATA", metadata)
    release_check.requirements(str(wheel))
    assert capsys.readouterr().out == "Requires-Dist: requests>=2.31\n"
