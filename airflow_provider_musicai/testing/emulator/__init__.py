"""The Music AI emulator: a loopback HTTP server of the Music AI REST API for tests.

Run it with :class:`airflow_provider_musicai.testing.EmulatorServer` or
``python -m airflow_provider_musicai.testing.emulator``. Importing this package is cheap; the server
modules (which need fastapi and uvicorn) load only when used.
"""

from __future__ import annotations
