"""Helpers shared by the Airflow-side tests (imported by ``conftest.py`` and the test modules)."""

from __future__ import annotations

import io
import json
import math
import struct
import wave
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO / "example_dags"
TEST_DAGS = Path(__file__).resolve().parent / "dags"


def wav_bytes(seconds: float = 0.5, rate: int = 8000, frequency: float = 440.0) -> bytes:
    """A small stereo 16-bit WAV."""
    frames = bytearray()
    for n in range(int(seconds * rate)):
        sample = int(12000 * math.sin(2 * math.pi * frequency * n / rate))
        frames += struct.pack("<hh", sample, -sample)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return buffer.getvalue()


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
        self.start_date = datetime.now(timezone.utc)
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


# -- running DAGs ------------------------------------------------------------------------------


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


def task_states(dag_run: Any) -> dict[str, str]:
    """``{"task_id" or "task_id[i]": state}`` of a finished DAG run."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state)
            .filter(TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id)
            .all()
        )
    return {
        (task_id if map_index < 0 else f"{task_id}[{map_index}]"): str(getattr(state, "value", state))
        for task_id, map_index, state in rows
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
