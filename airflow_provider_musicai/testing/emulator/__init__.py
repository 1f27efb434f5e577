"""The Music AI emulator: a loopback HTTP server of the Music AI REST API for tests.

Start it with :class:`~airflow_provider_musicai.testing.emulator.control.EmulatorServer` (subprocess
by default, or ``mode="thread"``), the pytest fixtures of
:mod:`airflow_provider_musicai.testing.pytest_plugin`, or
``python -m airflow_provider_musicai.testing.emulator --port 8000``. Importing this package is cheap;
the server modules (fastapi, uvicorn, httptools if installed) load only when a server starts.

Two listeners (separate origins):

* API, ``http://<host>:<port>/v1``: the endpoints of the API reference, authenticated by the raw key in
  ``Authorization``. Default keys: ``test-api-key`` ("Default Application") and ``other-api-key``
  ("Other Application"). Errors are ``{"statusCode": 404, "error": "Not Found", "message": "Job not found"}``.
  ``GET /job`` is newest first and a bare array unless ``list_shape`` is ``"object"`` (``{"jobs": [...]}``).
  The OpenAPI schema of the public API is at ``/openapi.json``.
* Storage, ``http://<host>:<storage-port>/storage/<key>?X-Expires=<unix>&X-Signature=<hex>``: signed
  PUT (upload URLs) and GET/HEAD (download and result URLs); 403 on a bad, expired or wrong-method
  signature; 400 (and a ``credential_leaks`` count) if ``Authorization`` is sent; 411 without
  ``Content-Length``.

Admin API on the API listener (no auth, not in the schema), all JSON:

* ``POST /__emulator__/reset`` ``{"config": false, "blobs": true}``: drop jobs, faults, counters (and blobs;
  and restore the startup config if ``config``).
* ``GET|POST /__emulator__/config``: ``queued_seconds``, ``processing_seconds``, ``list_shape``,
  ``upload_url_ttl_seconds``, ``download_url_ttl_seconds``, ``result_url_ttl_seconds``,
  ``input_timeout_seconds``.
* ``GET|POST|DELETE /__emulator__/faults``: the fault plan (see :mod:`.faults`).
* ``GET /__emulator__/counters``, ``GET /__emulator__/jobs``, ``GET /__emulator__/storage``,
  ``GET /__emulator__/info``, ``GET /__emulator__/health``.
"""

from __future__ import annotations
