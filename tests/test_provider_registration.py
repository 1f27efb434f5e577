"""The provider as Airflow sees it: entry point, schema, CLI listing and `airflow connections test`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_musicai.get_provider_info import get_provider_info

PACKAGE = "airflow-provider-musicai"


def airflow_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "airflow"), *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=240, env={**os.environ, **(env or {})}
    )


def test_provider_info_matches_airflows_schema() -> None:
    import importlib.resources

    import jsonschema

    schema_file = importlib.resources.files("airflow") / "provider_info.schema.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    (entry_point,) = [ep for ep in entry_points(group="apache_airflow_provider") if ep.dist.name == PACKAGE]
    assert entry_point.load()() == get_provider_info()


def test_ui_field_behaviour_relabels_host_and_password() -> None:
    from airflow_provider_musicai.hooks.musicai import MusicAIHook

    behaviour: dict[str, Any] = MusicAIHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == {"host": "API base URL", "password": "API key"}
    assert "login" in behaviour["hidden_fields"]


@pytest.mark.compat
def test_airflow_lists_the_provider_and_its_hook() -> None:
    providers = airflow_cli("providers", "list", "-o", "json")
    assert providers.returncode == 0, providers.stderr
    assert PACKAGE in {row["package_name"] for row in json.loads(providers.stdout)}
    hooks = airflow_cli("providers", "hooks", "-o", "json")
    assert hooks.returncode == 0, hooks.stderr
    rows = {row["connection_type"]: row for row in json.loads(hooks.stdout)}
    assert rows["musicai"]["class"] == "airflow_provider_musicai.hooks.musicai.MusicAIHook"


@pytest.mark.parametrize("good_key", [pytest.param(True, marks=pytest.mark.compat), False])
def test_airflow_connections_test(musicai_emulator: Any, good_key: bool) -> None:
    connection = musicai_emulator.connection_json(None if good_key else "wrong-key")
    result = airflow_cli(
        "connections",
        "test",
        "musicai_default",
        env={"AIRFLOW_CONN_MUSICAI_DEFAULT": connection, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"},
    )
    output = result.stdout + result.stderr
    if good_key:  # the CLI prints no message on success; the hook's is checked in tests/hook
        assert "Connection success!" in output, output
        assert musicai_emulator.admin.counters()["requests"]["GET /v1/application"] == 1
    else:
        assert "401" in output, output
    assert musicai_emulator.api_key not in output


@pytest.mark.compat
def test_connection_form_widgets_are_ones_airflow_supports() -> None:
    pytest.importorskip("wtforms")
    pytest.importorskip("flask_appbuilder")
    from wtforms import BooleanField, IntegerField, PasswordField, StringField

    from airflow_provider_musicai.hooks.musicai import MusicAIHook

    widgets = MusicAIHook.get_connection_form_widgets()
    from airflow_provider_musicai.get_provider_info import CONN_FIELDS

    assert set(widgets) == set(CONN_FIELDS)
    assert {"allow_plain_http", "timeout", "max_retries", "ca_bundle", "verify", "job_url_template"} <= set(
        widgets
    )
    supported = (IntegerField, PasswordField, StringField, BooleanField)
    assert all(issubclass(field.field_class, supported) for field in widgets.values())
    assert "default" not in widgets["timeout"].kwargs  # empty: only what the user types is saved
    assert widgets["timeout"].kwargs["render_kw"] == {"placeholder": "60"}
    assert widgets["verify"].kwargs["default"] is True  # a checkbox has no empty state
