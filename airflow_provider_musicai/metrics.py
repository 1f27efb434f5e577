"""The provider's metrics, reported through Airflow's own stats (StatsD, Datadog or OpenTelemetry,
as ``[metrics]`` configures), like Airflow's ``resumable_job.*`` counters.

Every name starts with ``musicai.`` (Airflow adds its ``statsd_prefix``, ``airflow.`` by default);
the list is in the docs' production page. A metric is never worth a failed task or trigger: Airflow's
stats are looked up once, on first use, and any error is logged once at DEBUG and otherwise ignored.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "musicai."

_UNRESOLVED: Any = object()
_stats: Any = _UNRESOLVED
_error_logged = False


def _airflow_stats() -> Any:
    """Airflow's ``Stats`` (``airflow.sdk.observability.stats`` on Airflow 3, ``airflow.stats`` on 2),
    or None when it cannot be imported."""
    global _stats
    if _stats is _UNRESOLVED:
        try:
            from airflow.providers.common.compat.sdk import Stats

            _stats = Stats
        except Exception as exc:
            _stats = None
            _log_error(exc)
    return _stats


def _log_error(exc: BaseException) -> None:
    global _error_logged
    if not _error_logged:
        _error_logged = True
        log.debug("Music AI metrics are not reported: %s: %s", type(exc).__name__, exc)


def _emit(method: str, name: str, *args: Any) -> None:
    stats = _airflow_stats()
    if stats is None:
        return
    try:
        getattr(stats, method)(PREFIX + name, *args)
    except Exception as exc:
        _log_error(exc)


def name_part(value: Any) -> str:
    """``value`` as one part of a metric name: letters, digits, ``_`` and ``-`` only."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(value))[:60] or "UNKNOWN"


def job_created() -> None:
    """``musicai.job.created``: a ``POST /job`` created a job."""
    _emit("incr", "job.created")


def job_reattached() -> None:
    """``musicai.job.reattached``: a retry reused the running or SUCCEEDED job of an earlier try."""
    _emit("incr", "job.reattached")


def job_finished(job: Mapping[str, Any]) -> None:
    """``musicai.job.succeeded`` or ``musicai.job.failed.<CODE>``, and ``musicai.job.duration``
    (``createdAt`` to ``completedAt``), for a wait that saw ``job`` end."""
    status = job.get("status")
    if status == "SUCCEEDED":
        _emit("incr", "job.succeeded")
    elif status == "FAILED":
        error = job.get("error")
        code = error.get("code") if isinstance(error, Mapping) else None
        _emit("incr", "job.failed." + name_part(code or "UNKNOWN"))
    else:
        return
    try:
        created = datetime.fromisoformat(str(job["createdAt"]).replace("Z", "+00:00"))
        completed = datetime.fromisoformat(str(job["completedAt"]).replace("Z", "+00:00"))
        duration = completed - created
    except (KeyError, TypeError, ValueError):
        return  # a document without both timestamps has no duration to report
    _emit("timing", "job.duration", duration)


def job_deleted(reason: str) -> None:
    """``musicai.job.deleted.<reason>``: a job deleted because its task was killed (``kill``) or its
    wait timed out and ``on_timeout`` said so (``timeout``)."""
    _emit("incr", "job.deleted." + name_part(reason))


def poller_cycle(requests: int, waits: int) -> None:
    """``musicai.poller.requests`` (requests of the cycle just ended) and ``musicai.poller.waits``
    (jobs the shared poller is waiting on), both gauges."""
    _emit("gauge", "poller.requests", requests)
    _emit("gauge", "poller.waits", waits)
