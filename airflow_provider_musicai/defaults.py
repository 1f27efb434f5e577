"""The provider's defaults: the connection id and the ``[musicai]`` configuration values.

Plain constants, imported by every layer (and by ``get_provider_info``); this module imports nothing.
"""

from __future__ import annotations

#: The connection id every hook, operator, sensor and trigger uses unless told otherwise.
DEFAULT_CONN_ID = "musicai_default"

#: ``[musicai] poller_log_interval``: seconds between a triggerer's shared-poller summary lines.
DEFAULT_POLLER_LOG_INTERVAL = 300.0

#: Seconds a catalog trigger holds its event after it started: Airflow 3's fire-right-after-deferral
#: race (apache/airflow#67287, #72716; see :mod:`airflow_provider_musicai.triggers.catalog`).
DEFAULT_DEFERRAL_HOLD = 5.0
