"""Where a feature needs a newer Airflow, the user is told so by name, on the version concerned."""

from __future__ import annotations

import importlib

import pytest

from tests.helpers.airflow import airflow_major, airflow_version


@pytest.mark.compat
@pytest.mark.skipif(airflow_major() >= 3, reason="asset watchers exist on Airflow 3")
def test_on_airflow_2_the_event_trigger_says_which_airflow_it_needs() -> None:
    with pytest.raises(ImportError) as raised:
        importlib.import_module("airflow_provider_musicai.triggers.events")
    message = str(raised.value)
    assert message.startswith("MusicAIJobEventTrigger needs Airflow 3.1 or later")
    assert f"this is Airflow {airflow_version()}" in message and "MusicAIJobSensor" in message
