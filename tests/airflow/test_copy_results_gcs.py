"""``copy_results_to`` with ``gs://`` end to end: the Google provider presigns V4 PUT URLs with a
generated service-account key against a loopback GCS emulator (``gcp-storage-emulator``, which does
not check signatures: the signature itself is verified in ``tests/hook/test_copy_results_gcs.py``),
and the Music AI emulator PUTs each output there.

Needs the ``[google]`` extra and ``gcp-storage-emulator`` (neither is in the dev extra): skipped
without them.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "airflow.providers.google.cloud.hooks.gcs",
    reason="needs the Google provider: pip install 'airflow-provider-musicai[google]'",
)
gcs_emulator = pytest.importorskip(
    "gcp_storage_emulator.server", reason="needs gcp-storage-emulator: pip install gcp-storage-emulator"
)

from tests.helpers.copy_results import assert_outputs_copied_whole  # noqa: E402
from tests.hook.test_copy_results_gcs import service_account  # noqa: E402,F401

BUCKET = "musicai-stems"


@pytest.fixture(scope="module")
def gcs_server() -> Iterator[Any]:
    """A GCS emulator on 127.0.0.1 (an ephemeral port) with one bucket, stopped after the module."""
    server = gcs_emulator.create_server("127.0.0.1", 0, in_memory=True, default_bucket=BUCKET)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gcs_endpoint(gcs_server: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The emulator's URL, which google-cloud-storage uses (and signs URLs for) through
    ``STORAGE_EMULATOR_HOST``."""
    endpoint = f"http://127.0.0.1:{gcs_server._api._httpd.server_port}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
    return endpoint


@pytest.mark.usefixtures("service_account")
def test_outputs_land_in_the_gcs_bucket_whole(
    gcs_endpoint: str, musicai: Any, hook: Any, wav_file: Path, tmp_path: Path
) -> None:
    def read_object(name: str) -> bytes:
        with urllib.request.urlopen(f"{gcs_endpoint}/{BUCKET}/run1/{name}", timeout=30) as response:
            return bytes(response.read())

    assert_outputs_copied_whole(hook, wav_file, tmp_path, f"gs://{BUCKET}/run1/", read_object)
