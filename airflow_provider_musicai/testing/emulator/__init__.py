"""The Music AI emulator: a loopback HTTP server of the Music AI REST API for tests.

Start it with :class:`~airflow_provider_musicai.testing.emulator.control.EmulatorServer` (subprocess
by default, or ``mode="thread"``), the pytest fixtures of
:mod:`airflow_provider_musicai.testing.pytest_plugin`, or
``python -m airflow_provider_musicai.testing.emulator --port 8000``. Importing this package is cheap;
the server modules (fastapi, uvicorn, httptools if installed) load only when a server starts.

How faithful it is, and which behaviours are assumed rather than evidenced (with the evidence for
each choice): ``FIDELITY.md`` next to this file.

Listeners (separate origins; all HTTPS with a generated CA when started with ``https=True`` /
``--https``, whose PEM path is ``EmulatorHandle.ca_path``; results get their own origin then, or with
``separate_results``):

* API, ``http://<host>:<port>/v1``: the endpoints of the API reference, authenticated by the raw key in
  ``Authorization``. Default keys: ``test-api-key`` ("Default Application") and ``other-api-key``
  ("Other Application"). Errors are ``{"statusCode": 404, "error": "Not Found", "message": "Job not found"}``.
  ``GET /job`` is newest first (``oldest_first`` if ``job_list_order`` says so) and a bare array
  unless ``list_shape`` is ``"object"`` (``{"jobs": [...]}``).
  ``/api/...`` is an alias of ``/v1/...`` (the legacy prefix).
  The OpenAPI schema of the public API is at ``/openapi.json``.
* Storage, ``http://<host>:<storage-port>/storage/<key>?X-Expires=<unix>&X-Signature=<hex>``: signed
  PUT (upload URLs) and GET/HEAD (download and result URLs); 403 on a bad, expired or wrong-method
  signature, 400 ``ExpiredToken`` / ``MalformedSecurityHeader`` for an expired / malformed expiry (as
  Cloud Storage); 400 (and a ``credential_leaks`` count) if ``Authorization`` is sent; 411 without
  ``Content-Length`` unless the upload is chunked.

Admin API on the API listener (no auth, not in the schema), all JSON:

* ``POST /__emulator__/reset`` ``{"config": false, "blobs": true}``: drop jobs, faults, counters (and blobs;
  and restore the startup config if ``config``).
* ``GET|POST /__emulator__/config``: ``queued_seconds``, ``processing_seconds``, ``list_shape``,
  ``upload_url_ttl_seconds``, ``download_url_ttl_seconds``, ``result_url_ttl_seconds``,
  ``input_timeout_seconds``, ``job_list_order``, ``max_concurrent_jobs``, ``max_page_size``,
  ``result_value_types``,
  ``copy_results_unknown_outputs``, ``workflow_shape`` (``"slug"``, or ``"object"`` for the older
  ``{"id", "name"}`` form of a job's ``workflow``), ``manual_clock``.
* ``GET /__emulator__/clock``, ``POST /__emulator__/clock/advance`` ``{"seconds": 30}``: emulated time;
  ``POST /__emulator__/jobs/<id>/complete``: a job skips the rest of its QUEUED/STARTED time;
  ``POST /__emulator__/jobs/history`` ``{"count": 100000}``: keep that many finished jobs (older than
  every job), without processing them.
* ``GET|POST /__emulator__/workflows``, ``DELETE /__emulator__/workflows/<slug>``: declared workflows
  (see the emulator's ``catalog.py``).
* ``GET|POST /__emulator__/input-files`` ``{"files": {url: path}}``: external inputs served offline.
* ``GET|POST|DELETE /__emulator__/faults``: the fault plan (see :mod:`.faults`).
* ``GET /__emulator__/counters``, ``GET /__emulator__/jobs``, ``GET /__emulator__/storage``,
  ``GET /__emulator__/info``, ``GET /__emulator__/health``.
"""

from __future__ import annotations
