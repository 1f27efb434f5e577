"""The main job: run ``example_musicai_chain`` end to end through Airflow on the embedded emulator.

What it does, with nothing to set up beforehand:

1. makes a throw-away ``AIRFLOW_HOME`` (SQLite) and creates Airflow's database (``airflow db migrate``);
2. starts the Music AI emulator on loopback and points ``AIRFLOW_CONN_MUSICAI_DEFAULT`` at it;
3. runs the chain DAG with ``dag.test()``: Airflow executes each task, defers the waiting ones and
   runs their triggers inline, resumes them, and pushes XComs as a scheduler run would;
4. prints the job ids and the result files written.

Usage: ``python example_dags/run_example.py [--output DIR] [--keep-home]``. Results go to
``./example_output`` by default. Exits non-zero if the DAG run did not succeed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DAG_FILE = HERE / "example_musicai_chain.py"


def prepare_airflow_home(home: Path, output: Path) -> None:
    """Environment for a private Airflow (set before ``airflow`` is imported) and its database."""
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(HERE),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"),
            "MUSICAI_EXAMPLE_OUTPUT_DIR": str(output),
            "MUSICAI_EXAMPLE_POLL_INTERVAL": os.environ.get("MUSICAI_EXAMPLE_POLL_INTERVAL", "1"),
        }
    )
    airflow = shutil.which("airflow", path=os.path.dirname(sys.executable)) or "airflow"
    print(f"==> Creating Airflow's database in {home} (airflow db migrate)", flush=True)
    done = subprocess.run(
        [airflow, "db", "migrate"], capture_output=True, text=True, env=os.environ.copy(), check=False
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit("airflow db migrate failed")


def find_dag(path: Path, dag_id: str) -> Any:
    """The DAG ``dag_id`` defined in ``path``."""
    from airflow.providers.common.compat.sdk import DAG

    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for value in vars(module).values():
        if isinstance(value, DAG) and value.dag_id == dag_id:
            return value
    raise SystemExit(f"{path} defines no DAG {dag_id!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="example_output", help="where results are written")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary AIRFLOW_HOME")
    args = parser.parse_args(argv)

    output = Path(args.output).resolve()
    home = Path(tempfile.mkdtemp(prefix="musicai-airflow-home-"))
    prepare_airflow_home(home, output)

    from airflow_provider_musicai.testing import EmulatorServer

    started = time.monotonic()
    try:
        with EmulatorServer() as emulator:
            os.environ["AIRFLOW_CONN_MUSICAI_DEFAULT"] = emulator.connection_json()
            print(f"==> Music AI emulator serving {emulator.api_url}", flush=True)
            dag = find_dag(DAG_FILE, "example_musicai_chain")
            print(f"==> Running {dag.dag_id} with dag.test() (deferred tasks run their trigger inline)")
            dag_run = dag.test(run_conf={"output_dir": str(output)})
            jobs_left = emulator.admin.jobs()
        state = str(getattr(dag_run, "state", "unknown"))
    finally:
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)

    return report(state, output, jobs_left, time.monotonic() - started)


def report(state: str, output: Path, jobs_left: list[dict[str, Any]], seconds: float) -> int:
    """Print what came out of the run."""
    print()
    print(f"==> DAG run {state} in {seconds:.0f}s")
    summary_file = output / "summary.json"
    if summary_file.exists():
        summary = json.loads(summary_file.read_text())
        for task_id, job_id in summary["jobs"].items():
            print(f"    job {job_id}  ({task_id})")
            for name, path in sorted(summary["files"].get(task_id, {}).items()):
                size = Path(path).stat().st_size if Path(path).exists() else 0
                print(f"        {name:<16} {path}  ({size:,} bytes)")
    print(f"    jobs still on the service after cleanup: {len(jobs_left)}")
    print(f"    results are in {output}")
    return 0 if state.endswith("success") else 1


if __name__ == "__main__":
    sys.exit(main())
