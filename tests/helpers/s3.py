"""A real S3 API on loopback for ``copy_results_to`` tests: moto in server mode and an Airflow AWS
connection (``aws_moto``: fake keys, the moto endpoint) with a fresh bucket.

Its fixtures are registered for every test by the root conftest (``pytest_plugins``); they skip the
test where the ``[amazon]`` extra or ``moto[server]`` (both in the dev extra) is missing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

CONN = "aws_moto"
BUCKET = "musicai-stems"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (an ephemeral port), stopped after the module.

    moto's ``ThreadedMotoServer``, but answering with one ``Server`` header: moto's S3 app names
    itself and werkzeug adds its own, and aiohttp 3.13 (s3fs's client in the Airflow 2.11 lock)
    rejects a response with two ("Duplicate 'Server' header found"); S3 itself sends one.
    """
    pytest.importorskip("moto.server")
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class OneServerHeader(MotoRequestHandler):
        server_named = False

        def send_response(self, code: int, message: str | None = None) -> None:
            self.server_named = False
            super().send_response(code, message)

        def send_header(self, keyword: str, value: str) -> None:
            if keyword.lower() == "server":
                if self.server_named:
                    return
                self.server_named = True
            super().send_header(keyword, value)

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=OneServerHeader)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The ``aws_moto`` connection and an S3 client with a fresh, empty bucket ``BUCKET``."""
    S3Hook = pytest.importorskip("airflow.providers.amazon.aws.hooks.s3").S3Hook

    connection = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(connection))
    client = S3Hook(aws_conn_id=CONN).get_conn()
    if _exists(client):
        for listing in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=listing["Key"])
    else:
        client.create_bucket(Bucket=BUCKET)
    return client


def _exists(client: Any) -> bool:
    return any(b["Name"] == BUCKET for b in client.list_buckets().get("Buckets", []))


def s3_object(client: Any, key: str) -> bytes:
    """The bytes of ``BUCKET/key``."""
    return bytes(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
