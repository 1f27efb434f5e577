"""Checks of scripts/release-check, run by the Python of a virtualenv where only the wheel is installed.

``python _release_check.py wheel-contents WHEEL`` asserts what the wheel holds; ``requirements WHEEL``
prints its runtime requirements (what the cached virtualenvs are keyed by); ``docs-url PYPROJECT``
the package's Documentation URL; ``python
_release_check.py installed DOCS_URL DAGS_DIR`` runs inside a release virtualenv, from a temporary
directory, and asserts that Airflow sees the provider, its connection form and the example DAGs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

PACKAGE = "airflow-provider-musicai"
#: The line that marks an example DAG as needing Airflow 3 (its feature does not exist on 2.x).
AIRFLOW_3_ONLY = "# Airflow 3 only:"
FORBIDDEN_PARTS = {"tests", "benchmarks", "example_dags", "example_output", "docs", "__pycache__"}


def wheel_contents(wheel: str) -> None:
    """Only the package and its metadata: no tests, benchmarks, examples or their output."""
    names = zipfile.ZipFile(wheel).namelist()
    for name in names:
        top = name.split("/", 1)[0]
        assert top == "airflow_provider_musicai" or (
            top.endswith(".dist-info") and top.startswith("airflow_provider_musicai-")
        ), f"unexpected file in the wheel: {name}"
        assert not FORBIDDEN_PARTS & set(name.split("/")[:-1]), f"unexpected file in the wheel: {name}"
        assert not name.endswith((".pyc", ".pyo")), f"compiled file in the wheel: {name}"
    for required in ("airflow_provider_musicai/py.typed", "airflow_provider_musicai/get_provider_info.py"):
        assert required in names, f"{required} is missing from the wheel"
    print(f"{len(names)} files, {Path(wheel).stat().st_size / 1024:.0f} KiB")


def requirements(wheel: str) -> None:
    """Print the wheel's runtime ``Requires-Dist`` lines (extras left out)."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    for line in lines:
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            print(line)


def docs_url(pyproject: str) -> None:
    """Print the Documentation URL of pyproject.toml."""
    with open(pyproject, "rb") as file:
        print(tomllib.load(file)["project"]["urls"]["Documentation"])


def airflow(*args: str) -> str:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def installed(docs_url: str, dags_dir: str) -> None:
    """The provider as Airflow sees it, installed from the wheel alone."""
    import airflow as airflow_module

    import airflow_provider_musicai

    source = Path(airflow_provider_musicai.__file__).resolve()
    assert "site-packages" in source.parts, f"the provider was imported from {source}, not the wheel"
    version = airflow_provider_musicai.__version__

    providers = {row["package_name"]: row for row in json.loads(airflow("providers", "list", "-o", "json"))}
    assert providers.get(PACKAGE, {}).get("version") == version, f"providers list: {providers.get(PACKAGE)}"
    hooks = {row["connection_type"]: row for row in json.loads(airflow("providers", "hooks", "-o", "json"))}
    assert hooks["musicai"]["class"] == "airflow_provider_musicai.hooks.musicai.MusicAIHook", hooks["musicai"]

    from airflow.providers_manager import ProvidersManager

    from airflow_provider_musicai.get_provider_info import CONN_FIELDS

    manager = ProvidersManager()
    widgets = {name for name in manager.connection_form_widgets if "musicai" in name}
    missing = {field for field in CONN_FIELDS if not any(name.endswith(field) for name in widgets)}
    assert not missing, f"connection form fields not loaded: {sorted(missing)} (loaded: {sorted(widgets)})"
    behaviour = manager.field_behaviours.get("musicai") or {}
    assert behaviour.get("relabeling", {}).get("password") == "API key", behaviour

    info = manager.providers[PACKAGE]
    documentation_url = info.data.get("documentation-url")  # Airflow 3 reads it from the metadata
    if documentation_url is None:
        from airflow.utils.docs import get_doc_url_for_provider  # Airflow 2.11's Providers page

        documentation_url = get_doc_url_for_provider(PACKAGE, version)
    assert documentation_url == docs_url, f"documentation link: {documentation_url!r}"

    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    if int(airflow_module.__version__.split(".")[0]) < 3:
        for path in Path(dags_dir).glob("example_musicai_*.py"):
            if AIRFLOW_3_ONLY in path.read_text():
                path.unlink()  # an example of an Airflow 3 feature (asset watchers): not for 2.x
    try:
        bag = DagBag(dag_folder=dags_dir, include_examples=False)
    except TypeError:  # Airflow 3.3: no bundled examples to leave out
        bag = DagBag(dag_folder=dags_dir)
    assert not bag.import_errors, f"example DAGs failed to import: {bag.import_errors}"
    found = sorted(bag.dag_ids)
    # Every example file defines at least one DAG (the Assets example defines a producer and a consumer).
    files_with_dags = sorted({Path(bag.dags[dag_id].fileloc).stem for dag_id in found})
    expected = sorted(path.stem for path in Path(dags_dir).glob("example_musicai_*.py"))
    assert files_with_dags == expected, f"example files with DAGs: {files_with_dags}, expected {expected}"
    print(
        f"Airflow {airflow_module.__version__}: provider {version} listed, hook and {len(widgets)} form"
        f" fields loaded, documentation link {documentation_url}, {len(found)} example DAGs parsed"
    )


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    if command == "wheel-contents":
        wheel_contents(*arguments)
    elif command == "docs-url":
        docs_url(*arguments)
    elif command == "requirements":
        requirements(*arguments)
    elif command == "installed":
        os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        installed(*arguments)
    else:
        raise SystemExit(f"unknown command {command!r}")
