"""The names every layer shares, re-exported from the modules that hold them (kept for imports written
against this module before it was split):

* :mod:`~airflow_provider_musicai.defaults`: the default connection id and ``[musicai]`` settings;
* :mod:`~airflow_provider_musicai.redaction`: secrets kept out of logs, errors and XCom;
* :mod:`~airflow_provider_musicai.timestamps`: UTC stamps and the clock-skew allowance;
* :mod:`~airflow_provider_musicai.status_log`: :class:`StatusLog`.

New code imports from those modules.
"""

from __future__ import annotations

from airflow_provider_musicai.defaults import (
    DEFAULT_CONN_ID,
    DEFAULT_DEFERRAL_HOLD,
    DEFAULT_POLLER_LOG_INTERVAL,
)
from airflow_provider_musicai.redaction import (
    KEY_PLACEHOLDER,
    DemoteOwnRequestLines,
    RedactQueryStrings,
    install_log_redaction,
    own_http_requests,
    printable,
    redact_url,
    scrub_body,
    scrub_text,
)
from airflow_provider_musicai.status_log import StatusLog, SupportsLog
from airflow_provider_musicai.timestamps import CLOCK_SKEW_ALLOWANCE, ahead_of_clock, utc_stamp

__all__ = [
    "CLOCK_SKEW_ALLOWANCE",
    "DEFAULT_CONN_ID",
    "DEFAULT_DEFERRAL_HOLD",
    "DEFAULT_POLLER_LOG_INTERVAL",
    "KEY_PLACEHOLDER",
    "DemoteOwnRequestLines",
    "RedactQueryStrings",
    "StatusLog",
    "SupportsLog",
    "ahead_of_clock",
    "install_log_redaction",
    "own_http_requests",
    "printable",
    "redact_url",
    "scrub_body",
    "scrub_text",
    "utc_stamp",
]
