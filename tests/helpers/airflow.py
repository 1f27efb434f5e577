"""Airflow-side helpers: fake task instances, loading and running DAGs, reading what Airflow stored,
and :class:`Deployment`, a private Airflow running as real processes (scheduler, triggerer...), which
:func:`deployed` starts and stops for the suites that run one."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO / "example_dags"
TEST_DAGS = REPO / "tests" / "airflow" / "dags"
INTEGRATION_DAGS = REPO / "tests" / "airflow" / "integration_dags"
#: The ``airflow`` command of this interpreter.
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def airflow_version() -> str:
    """The installed Airflow version."""
    from airflow import __version__

    return str(__version__)


def airflow_major() -> int:
    """2 or 3."""
    return int(airflow_version().split(".")[0])


def airflow_minor() -> tuple[int, int]:
    """(major, minor) of the installed Airflow, e.g. (3, 0)."""
    major, minor = airflow_version().split(".")[:2]
    return int(major), int(minor)


class FakeTI:
    """The parts of a task instance the operators use, for calling ``execute()`` directly."""

    def __init__(
        self, *, dag_id: str = "dag", task_id: str = "task", run_id: str = "run", map_index: int = -1
    ) -> None:
        self.dag_id = dag_id
        self.task_id = task_id
        self.run_id = run_id
        self.map_index = map_index
        self.try_number = 1
        self.start_date = datetime.now(UTC)
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


class FakeStateStore:
    """Airflow 3.3's task state store, in memory."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, **_: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))


# -- running DAGs ----------------------------------------------------------------------------------


def load_dag_file(path: Path) -> Any:
    """Import a DAG file as Airflow would; return the module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"musicai_dags_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_example(name: str) -> Any:
    """The DAG defined by ``example_dags/<name>.py``."""
    return load_dag_file(EXAMPLE_DAGS / f"{name}.py").dag


def load_test_dag(variable: str) -> Any:
    """A DAG of ``tests/airflow/dags/musicai_test_dags.py`` by its variable name."""
    return getattr(load_dag_file(TEST_DAGS / "musicai_test_dags.py"), variable)


def run_dag(dag: Any, conf: dict[str, Any] | None = None) -> Any:
    """``dag.test()`` (deferred tasks run their triggers inline); returns the DagRun."""
    return dag.test(run_conf=conf or {})


def task_column(dag_run: Any, column: str) -> dict[str, Any]:
    """``{"task_id" or "task_id[i]": value}`` of one TaskInstance ``column`` in a DAG run."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(TaskInstance.task_id, TaskInstance.map_index, getattr(TaskInstance, column))
            .filter(TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id)
            .all()
        )
    return {
        (task_id if map_index < 0 else f"{task_id}[{map_index}]"): value for task_id, map_index, value in rows
    }


def task_states(dag_run: Any) -> dict[str, str]:
    """``{"task_id" or "task_id[i]": state}`` of a finished DAG run."""
    return {
        task: str(getattr(state, "value", state)) for task, state in task_column(dag_run, "state").items()
    }


def xcom_value(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    """One XCom value of a DAG run, deserialized, on Airflow 3 and 2."""
    from airflow.utils.session import create_session

    try:
        from airflow.models.xcom import XComModel
    except ImportError:  # Airflow 2
        from airflow.models.xcom import XCom

        return XCom.get_one(
            run_id=dag_run.run_id, dag_id=dag_run.dag_id, task_id=task_id, key=key, map_index=map_index
        )
    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
                XComModel.map_index == map_index,
            )
            .one_or_none()
        )
        return None if row is None else XComModel.deserialize_value(row)


def reschedules() -> int:
    """Rows in Airflow's ``task_reschedule`` table: one per reschedule of a sensor's poke."""
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return int(session.scalar(select(func.count()).select_from(TaskReschedule)) or 0)


@contextlib.contextmanager
def completed_after_a_reschedule(emulator: Any, job_ids: list[str]) -> Iterator[None]:
    """While the body runs a DAG whose sensor waits for ``job_ids`` in reschedule mode (the emulator's
    clock stopped: ``manual_clock``), complete the jobs once the sensor has been rescheduled at least
    once; fails if it never was. No wait on the jobs' durations, and the reschedule path certainly ran."""
    from tests.helpers.reliability import wait_until

    before = reschedules()

    def complete() -> None:
        wait_until("the sensor to be rescheduled", lambda: reschedules() > before, timeout=300, interval=0.25)
        for job_id in job_ids:
            emulator.admin.complete_job(job_id)

    with ThreadPoolExecutor(1) as pool:
        completer = pool.submit(complete)
        yield
        completer.result()


def stored_rows_text() -> str:
    """Every row of the tables where Airflow keeps task data (XCom, rendered template fields, task
    instances with their trigger kwargs and events, triggers), as text to scan for secrets."""
    from airflow import settings
    from sqlalchemy import inspect, text

    engine = settings.engine
    assert engine is not None
    tables = set(inspect(engine).get_table_names())
    chunks: list[str] = []
    with engine.connect() as connection:
        for table in (
            "xcom",
            "rendered_task_instance_fields",
            "task_instance",
            "trigger",
            "task_state_store",
        ):
            if table in tables:
                chunks.extend(repr(tuple(row)) for row in connection.execute(text(f"SELECT * FROM {table}")))
    return "\n".join(chunks)


# -- a private Airflow as real processes -----------------------------------------------------------

#: The DAG of ``tests/airflow/integration_dags``.
DAG_ID = "musicai_integration"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Deployment:
    """A private Airflow: its environment, its processes and a read-only view of its database."""

    def __init__(
        self,
        home: Path,
        connection: str,
        *,
        dag_files: tuple[Path, ...] = (INTEGRATION_DAGS / "musicai_integration_dag.py",),
        env: Mapping[str, str] | None = None,
        database_url: str | None = None,
        celery_broker_url: str | None = None,
        celery_workers: int = 2,
        triggerers: int = 1,
    ) -> None:
        """SQLite and the Local (Airflow 3) or Sequential (Airflow 2) executor by default; with
        ``database_url`` (PostgreSQL) and ``celery_broker_url`` (Redis), the CeleryExecutor with
        ``celery_workers`` workers. ``triggerers`` triggerer processes: ``triggerer``,
        ``triggerer-2``... ``env`` adds to (or overrides) the processes' environment."""
        self.home = home
        self.db = home / "airflow.db"
        self.database_url = database_url or f"sqlite:///{self.db}"
        dags = home / "dags"
        dags.mkdir(parents=True)
        # A process that starts without an airflow.cfg writes one with fresh random keys: processes
        # started together would each use their own (a trigger's kwargs encrypted with one Fernet key
        # are unreadable with another). The keys are in the environment below; this file only stops
        # the writing.
        (home / "airflow.cfg").write_text("# The settings of this Deployment are its environment.\n")
        for dag_file in dag_files:
            shutil.copy(dag_file, dags)
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("AIRFLOW") and not key.startswith("PYTEST")
        }
        self.env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "2",
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "2",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                "AIRFLOW_CONN_MUSICAI_DEFAULT": connection,
                "PYTHONUNBUFFERED": "1",
                # Executors start tasks with the ``airflow`` command: this interpreter's.
                "PATH": os.pathsep.join([str(Path(AIRFLOW).parent), os.environ.get("PATH", "")]),
            }
        )
        if airflow_major() >= 3:
            port = free_port()
            self.env.update(
                {
                    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
                    "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
                    "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                    "AIRFLOW__API__PORT": str(port),
                }
            )
            self.commands = {
                "api-server": [
                    "api-server",
                    "--apps",
                    "execution",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                "dag-processor": ["dag-processor"],
                "scheduler": ["scheduler"],
            }
        else:
            self.env.update(
                {
                    "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
                    "AIRFLOW__WEBSERVER__SECRET_KEY": secrets.token_hex(16),
                    "AIRFLOW__CORE__INTERNAL_API_SECRET_KEY": secrets.token_hex(16),
                }
            )
            self.commands = {"scheduler": ["scheduler"]}
        self.commands["triggerer"] = ["triggerer"]
        for number in range(2, triggerers + 1):
            # The first triggerer serves its logs on the trigger log port; on one host, only it can.
            self.commands[f"triggerer-{number}"] = ["triggerer", "--skip-serve-logs"]
        if celery_broker_url is not None:
            self.env.update(
                {
                    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                    "AIRFLOW__CELERY__BROKER_URL": celery_broker_url,
                    "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.database_url,
                }
            )
            for number in range(1, celery_workers + 1):
                self.commands[f"celery-worker-{number}"] = [
                    "celery",
                    "worker",
                    "--celery-hostname",
                    f"worker{number}@%h",
                    "--skip-serve-logs",
                ]
        self.env.update(env or {})
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.starts: dict[str, int] = {}

    def cli(self, *args: str, timeout: float = 600) -> str:
        """Run ``airflow *args`` in this deployment's environment; ``timeout`` only guards against a
        hang (an Airflow command can take minutes to import on a 2-core machine kept busy)."""
        done = subprocess.run(
            [AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        assert done.returncode == 0, (
            f"airflow {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
        return done.stdout

    def migrate(self, template: Path | None = None, timeout: float = 600) -> None:
        """Create the metadata database (``airflow db migrate``). On SQLite with a ``template`` path,
        the first Deployment to get there migrates and leaves a copy of its fresh database at
        ``template``; later ones (in any xdist worker of the run: a lock file orders them) copy it
        instead of migrating anew, which takes tens of seconds on a busy machine."""
        if template is None or not self.database_url.startswith("sqlite"):
            self.cli("db", "migrate", timeout=timeout)
            return
        with template.with_suffix(".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if template.exists():
                shutil.copyfile(template, self.db)
                return
            self.cli("db", "migrate", timeout=timeout)
            partial = template.with_suffix(".partial")
            # SQLite's backup reads the database whole, a write-ahead log included.
            with (
                contextlib.closing(sqlite3.connect(self.db)) as source,
                contextlib.closing(sqlite3.connect(partial)) as copy,
            ):
                source.backup(copy)
            partial.replace(template)

    def start(self) -> None:
        for name in self.commands:
            self.start_one(name)

    def start_one(self, name: str) -> None:
        """Start process ``name`` in its own process group; a restart logs to ``<name>.<n>.log``."""
        count = self.starts.get(name, 0)
        self.starts[name] = count + 1
        with (self.home / (f"{name}.log" if count == 0 else f"{name}.{count}.log")).open("wb") as log:
            self.processes[name] = subprocess.Popen(
                [AIRFLOW, *self.commands[name]],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def restart(self, name: str, how: signal.Signals = signal.SIGKILL) -> None:
        """Stop ``name`` (its whole process group) with ``how`` (SIGKILL: a crash; SIGTERM: a clean
        stop, escalated to SIGKILL after 60 s) and start it again."""
        process = self.processes[name]
        os.killpg(process.pid, how)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        self.start_one(name)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait(5)
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):  # what its children left in its group
                os.killpg(process.pid, signal.SIGKILL)

    def logs(self) -> str:
        """Every process log and every task log."""
        files = [*self.home.glob("*.log"), *(self.home / "logs").rglob("*.log")]
        return "\n".join(path.read_text(errors="replace") for path in files if path.is_file())

    def kill(self, name: str) -> None:
        """SIGKILL ``name``'s whole process group (a crash: nothing is cleaned up)."""
        process = self.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` (``?`` placeholders), read-only, on SQLite or PostgreSQL."""
        if self.database_url.startswith("postgresql"):
            import psycopg2

            connection = psycopg2.connect(self.database_url.replace("+psycopg2", ""))
            try:
                connection.set_session(readonly=True, autocommit=True)
                with connection.cursor() as cursor:
                    try:
                        cursor.execute(sql.replace("?", "%s"), params)
                    except psycopg2.errors.UndefinedTable:  # not created yet
                        return []
                    return [tuple(row) for row in cursor.fetchall()]
            finally:
                connection.close()
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as db:
            try:
                return db.execute(sql, params).fetchall()
            except sqlite3.OperationalError:  # table not created yet, or locked
                return []

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 180) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                assert process.poll() is None, f"airflow {name} exited:\n{self.logs()[-5000:]}"
            value = check()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; logs:\n{self.logs()[-8000:]}")

    def wait_for_dags(self, *dag_ids: str, timeout: float = 180) -> None:
        """Wait until the DAG processor has stored every one of ``dag_ids``."""
        marks = ", ".join("?" * len(dag_ids))
        self.wait_for(
            f"the DAGs {', '.join(dag_ids)} to be parsed",
            lambda: (
                len(self.query(f"SELECT dag_id FROM serialized_dag WHERE dag_id IN ({marks})", *dag_ids))
                == len(dag_ids)
            ),
            timeout=timeout,
        )

    def tis(self, run_id: str, dag_id: str = DAG_ID) -> list[tuple[Any, ...]]:
        """(task_id, map_index, state, try_number, pid) of a run's task instances."""
        return self.query(
            "SELECT task_id, map_index, state, try_number, pid FROM task_instance "
            "WHERE dag_id = ? AND run_id = ? ORDER BY task_id, map_index",
            dag_id,
            run_id,
        )

    def ti_state(self, run_id: str, dag_id: str = DAG_ID, task_id: str = "job") -> str | None:
        """The state of task ``task_id`` (unmapped) in a run."""
        rows = self.query(
            "SELECT state FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ?",
            dag_id,
            run_id,
            task_id,
        )
        return rows[0][0] if rows else None

    def run_state(self, run_id: str, dag_id: str = DAG_ID) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return rows[0][0] if rows else None

    def trigger(self, run_id: str, conf: dict[str, Any], dag_id: str = DAG_ID) -> None:
        self.cli("dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(conf))


@contextlib.contextmanager
def deployed(
    home: Path,
    emulator: Any,
    *,
    extra: Mapping[str, Any],
    dags: tuple[str, ...] = (),
    db_template: Path | None = None,
    migrate_timeout: float = 180,
    **options: Any,
) -> Iterator[Deployment]:
    """A :class:`Deployment` in ``home`` whose ``musicai_default`` connection points at ``emulator``
    with ``extra``: its database migrated (or copied from ``db_template``, see
    :meth:`Deployment.migrate`), its processes started and (if ``dags`` names any) those DAGs
    parsed; stopped on exit, whatever happened. ``options`` go to :class:`Deployment`."""
    connection = json.dumps({**emulator.connection_dict(), "extra": json.dumps(dict(extra))})
    deployment = Deployment(home, connection, **options)
    deployment.migrate(db_template, timeout=migrate_timeout)
    deployment.start()
    try:
        if dags:
            deployment.wait_for_dags(*dags)
        yield deployment
    finally:
        deployment.stop()
