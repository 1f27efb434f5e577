"""The API key is registered with Airflow's secrets masker on every supported Airflow, whichever
module that Airflow (or its common-compat) defines ``mask_secret`` in."""

from __future__ import annotations

import importlib

import pytest

#: Where each Airflow keeps the masker's ``redact``, newest first.
_REDACT_MODULES = (
    "airflow.sdk.log",
    "airflow.sdk._shared.secrets_masker",
    "airflow.sdk.execution_time.secrets_masker",
    "airflow.utils.log.secrets_masker",
)


def redact(text: str) -> object:
    for name in _REDACT_MODULES:
        try:
            return importlib.import_module(name).redact(text)
        except (ImportError, AttributeError):
            continue
    raise AssertionError("no secrets masker in this Airflow")


@pytest.mark.compat
def test_the_hook_registers_the_api_key_with_this_airflows_masker() -> None:
    # Airflow masks a connection's password itself when it reads one; the hook also registers the key
    # it parsed (it may come from elsewhere), which common-compat exports only from 1.22: Airflow 3.1
    # and 3.2's constraints pin older ones, where this once did nothing.
    from airflow_provider_musicai.hooks.musicai import _mask_secret

    key = "mk-3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e"
    assert key in str(redact(f"Authorization: {key}"))
    _mask_secret(key)
    assert key not in str(redact(f"Authorization: {key}"))
