"""The connection form saves only what the user set: the fields start empty (their default shown in
the description or as placeholder), an empty field is saved empty, and the provider reads empty as
"this release's default". Checked at the layer each Airflow's UI builds the connection from: on
Airflow 3 the hook metadata the React form starts from (``HookMetaService``, behind
``/ui/connections/hook_meta``), saved the way that form saves (every field's value into ``extra``);
on Airflow 2.11 the FAB view's own ``process_form`` on a browser-like submission."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_musicai.get_provider_info import CONN_FIELDS, default_text
from airflow_provider_musicai.hooks._config import ConnectionConfig
from tests.helpers.airflow import airflow_major

KEY = "form-test-key"
#: Extras that cannot be left empty: on/off switches have no empty state.
SWITCHES = {name for name, spec in CONN_FIELDS.items() if "boolean" in spec["schema"]["type"]}


def config(extra: dict[str, Any]) -> ConnectionConfig:
    return ConnectionConfig.from_connection(
        conn_id="musicai_form", host="https://api.example.com/v1", password=KEY, extra=json.dumps(extra)
    )


@pytest.mark.skipif(airflow_major() < 3, reason="Airflow 3's React connection form")
def test_airflow_3_form_starts_empty_and_saves_no_default() -> None:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    (meta,) = [meta for meta in HookMetaService.hook_meta_data() if meta.connection_type == "musicai"]
    fields = dict(meta.extra_fields or {})
    assert set(fields) == set(CONN_FIELDS)
    for name, field in fields.items():
        if name in SWITCHES:
            continue
        assert field["value"] is None, name  # nothing prefilled
        text = default_text(name)
        if text is not None:
            assert f"Default: {text}." in field["description"], name
    # What the form saves untouched: every field's value (its conf JSON), null where empty.
    saved = {name: field["value"] for name, field in fields.items()}
    assert {name: value for name, value in saved.items() if value is not None} == {
        "allow_plain_http": False,
        "verify": True,
    }
    assert config(saved) == config({})


@pytest.mark.skipif(airflow_major() >= 3, reason="Airflow 2.11's FAB connection form")
def test_airflow_2_form_saves_only_what_the_user_typed() -> None:
    from airflow.www.app import create_app
    from airflow.www.forms import create_connection_form_class
    from airflow.www.views import ConnectionModelView
    from werkzeug.datastructures import MultiDict

    app = create_app(testing=True)
    app.config["WTF_CSRF_ENABLED"] = False
    form_class = create_connection_form_class()
    with app.test_request_context():  # the form as the browser gets it, each box as rendered
        shown = form_class()
        posted = {"conn_id": "musicai_form", "conn_type": "musicai", "extra": ""}
        for name in CONN_FIELDS:
            field = shown[f"extra__musicai__{name}"]
            if name not in SWITCHES:  # a browser posts every text box back, empty or not
                posted[field.name] = field._value()
            elif field.data:  # and a checkbox only when it is checked
                posted[field.name] = "y"
    posted["extra__musicai__timeout"] = "90"  # the one value the user typed
    with app.test_request_context(method="POST", data=posted):
        form = form_class(MultiDict(posted))
        assert form.validate(), form.errors
        ConnectionModelView.process_form(ConnectionModelView(), form, True)
        saved = json.loads(form.extra.data)
    assert {name: value for name, value in saved.items() if value is not None} == {
        "timeout": "90",
        "allow_plain_http": False,
        "verify": True,
    }
    assert config(saved) == config({"timeout": 90})


def test_an_old_connection_holding_every_default_reads_as_before() -> None:
    """Connections saved by earlier releases hold every default: read as the same settings."""
    old = {name: spec["schema"].get("default") for name, spec in CONN_FIELDS.items()}
    assert config(old) == config({})
