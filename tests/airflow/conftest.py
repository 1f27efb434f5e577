"""Airflow-side fixtures: ``deploy`` (Airflow as real processes on the emulator) and fewer retries
for ``musicai_default``.

The environment (AIRFLOW_HOME, database, DAGs folder) and the fixtures ``musicai``, ``hook``,
``input_url`` and ``make_context`` are the root ``tests/conftest.py``'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import AIRFLOW_RETRIES
from tests.helpers.airflow import Deployment, deployed


@pytest.fixture(autouse=True)
def _direct_execute(allow_direct_execute: None) -> None:
    """Unit tests call ``operator.execute()`` directly, outside the task runner."""


@pytest.fixture
def musicai_extra() -> dict[str, Any]:
    """``musicai_default`` takes fewer retries here than in the hook tests."""
    return AIRFLOW_RETRIES


@pytest.fixture
def deploy(musicai: Any, tmp_path: Path, airflow_db_template: Path) -> Iterator[Callable[..., Deployment]]:
    """``deploy(dags=..., **options)``: a private Airflow as real processes (:func:`deployed`), its
    ``musicai_default`` on the emulator, started and its ``dags`` parsed; stopped after the test."""
    with contextlib.ExitStack() as running:

        def start(**options: Any) -> Deployment:
            return running.enter_context(
                deployed(
                    tmp_path / "airflow-home",
                    musicai,
                    extra={"timeout": 10},
                    db_template=airflow_db_template,
                    **options,
                )
            )

        yield start
