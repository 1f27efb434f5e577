"""The deployment suite runs alone (``scripts/test`` runs it after the main suite on Airflow 3, with
``MUSICAI_DEPLOYMENT=1``): it starts PostgreSQL, Redis and a whole Celery Airflow, using the machine."""

from __future__ import annotations

import os

import pytest

from tests.deployment.services import missing_services
from tests.helpers.airflow import airflow_major


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = None
    if os.environ.get("MUSICAI_DEPLOYMENT", "") != "1":
        reason = "the deployment suite runs alone: MUSICAI_DEPLOYMENT=1 pytest -m deployment"
    elif airflow_major() < 3:
        reason = "the deployment suite runs on Airflow 3"
    elif missing := missing_services():
        reason = f"not installed: {', '.join(missing)} (scripts/_services.sh installs them)"
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("deployment") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))
