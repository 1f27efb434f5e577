"""Thread-safe counters that tests read through ``GET /__emulator__/counters``."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import Any

LISTENERS = ("api", "storage")


class Counters:
    """Request, job, storage, fault and connection counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open_now: dict[str, int] = {name: 0 for name in LISTENERS}
        self.generation = 0
        self.reset()

    def reset(self) -> None:
        """Zero every counter (the currently open connections stay counted as open)."""
        with self._lock:
            self.generation += 1
            self.requests: Counter[str] = Counter()
            self.statuses: Counter[str] = Counter()
            self.endpoint_statuses: defaultdict[str, Counter[str]] = defaultdict(Counter)
            self.jobs_created = 0
            self.jobs_created_by_app: Counter[str] = Counter()
            self.jobs_deleted = 0
            self.objects_stored = 0
            self.bytes_stored = 0
            self.bytes_served = 0
            self.credential_leaks = 0
            self.faults: Counter[str] = Counter()
            self.accepted: Counter[str] = Counter()
            self.opened: Counter[str] = Counter()
            self.max_open: dict[str, int] = dict(self.open_now)

    def request(self, endpoint: str) -> None:
        """Count one public request to ``endpoint`` (e.g. ``GET /v1/job/{id}``)."""
        with self._lock:
            self.requests[endpoint] += 1

    def response(self, endpoint: str, status: int, generation: int) -> None:
        """Count the status answered to a request that arrived in ``generation`` (stale after a reset)."""
        with self._lock:
            if generation != self.generation:
                return
            self.statuses[str(status)] += 1
            self.endpoint_statuses[endpoint][str(status)] += 1

    def job_created(self, app_name: str) -> None:
        """Count a created job."""
        with self._lock:
            self.jobs_created += 1
            self.jobs_created_by_app[app_name] += 1

    def job_deleted(self) -> None:
        """Count a deleted job."""
        with self._lock:
            self.jobs_deleted += 1

    def stored(self, size: int) -> None:
        """Count an object stored through a PUT."""
        with self._lock:
            self.objects_stored += 1
            self.bytes_stored += size

    def served(self, size: int) -> None:
        """Count body bytes sent by the storage listener."""
        with self._lock:
            self.bytes_served += size

    def credential_leak(self) -> None:
        """Count a storage request that carried a configured API key."""
        with self._lock:
            self.credential_leaks += 1

    def fault(self, kind: str) -> None:
        """Count an injected fault."""
        with self._lock:
            self.faults[kind] += 1

    def connection_made(self, listener: str) -> None:
        """Count an accepted TCP connection."""
        with self._lock:
            self.accepted[listener] += 1
            self.open_now[listener] += 1
            self.max_open[listener] = max(self.max_open[listener], self.open_now[listener])

    def connection_lost(self, listener: str) -> None:
        """Count a closed TCP connection."""
        with self._lock:
            self.open_now[listener] = max(0, self.open_now[listener] - 1)

    def connection_used(self, listener: str) -> None:
        """Count a connection on its first public (non-admin) request."""
        with self._lock:
            self.opened[listener] += 1

    def snapshot(self) -> dict[str, Any]:
        """Return every counter as JSON-ready data."""
        with self._lock:
            return {
                "requests": dict(self.requests),
                "requests_total": sum(self.requests.values()),
                "statuses": dict(self.statuses),
                "endpoint_statuses": {k: dict(v) for k, v in self.endpoint_statuses.items()},
                "jobs_created": self.jobs_created,
                "jobs_created_by_app": dict(self.jobs_created_by_app),
                "jobs_deleted": self.jobs_deleted,
                "objects_stored": self.objects_stored,
                "bytes_stored": self.bytes_stored,
                "bytes_served": self.bytes_served,
                "credential_leaks": self.credential_leaks,
                "faults": dict(self.faults),
                "faults_total": sum(self.faults.values()),
                "connections": {
                    listener: {
                        "opened": self.opened[listener],
                        "accepted": self.accepted[listener],
                        "open": self.open_now[listener],
                        "max_open": self.max_open[listener],
                    }
                    for listener in LISTENERS
                },
                "connections_opened": sum(self.opened.values()),
            }
