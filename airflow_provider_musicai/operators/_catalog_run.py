"""Where a catalog run is between two worker calls, and the manifest records it writes.

:class:`CatalogRun` is what :class:`~airflow_provider_musicai.operators.catalog.MusicAICatalogOperator`
changes as it takes tracks, starts jobs and records outcomes. It crosses a deferral as the catalog
trigger's ``carry``, a JSON dict (:meth:`CatalogRun.to_carry`, :meth:`CatalogRun.from_carry`)
whose keys every release reads: a carry from an earlier release may lack ``after`` (the walk then
resumes by count), ``skipped``/``removed``, ``state`` and ``prints``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def track_record(
    source: str, status: Any, job_id: str | None = None, outputs: Any = None, error: Any = None
) -> dict[str, Any]:
    """A track's manifest record: ``{"source", "job_id", "status", "outputs", "error"}`` (status
    SUCCEEDED or FAILED for a track processed, SKIPPED or REMOVED in incremental runs)."""
    return {"source": source, "job_id": job_id, "status": status, "outputs": outputs, "error": error}


#: The count each manifest status adds to (any other status: ``failed``).
_COUNTED_AS = {"SUCCEEDED": "succeeded", "SKIPPED": "skipped", "REMOVED": "removed"}


@dataclass
class CatalogRun:
    """A catalog run's progress: ids, names and numbers only, never the catalog nor a URL."""

    #: Tracks taken from the sorted catalog so far.
    cursor: int = 0
    #: The name of the last track taken: the next walk resumes after it (None: by ``cursor``).
    after: str | None = None
    #: The jobs in flight: ``{job id: track name}``, at most ``max_in_flight``.
    window: dict[str, str] = field(default_factory=dict)
    #: Tracks past the cursor that a new try found recorded or running (not taken again).
    ahead: list[str] = field(default_factory=list)
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    removed: int = 0
    #: Incremental runs: the state snapshot read in step with the catalog, and the walk's byte
    #: offset in it.
    snapshot: str | None = None
    offset: int = 0
    #: Incremental runs: fingerprints of the tracks taken whose outcome is not recorded yet.
    prints: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_carry(cls, carry: Mapping[str, Any]) -> CatalogRun:
        """The run a carry describes (this release's or an earlier one's)."""
        state: Mapping[str, Any] = carry["state"] if isinstance(carry.get("state"), Mapping) else {}
        after = carry.get("after")
        return cls(
            cursor=int(carry.get("cursor") or 0),
            after=None if after is None else str(after),
            window={str(job): str(name) for job, name in dict(carry.get("window") or {}).items()},
            ahead=[str(name) for name in carry.get("ahead") or []],
            succeeded=int(carry.get("succeeded") or 0),
            failed=int(carry.get("failed") or 0),
            skipped=int(carry.get("skipped") or 0),
            removed=int(carry.get("removed") or 0),
            snapshot=state.get("snapshot"),
            offset=int(state.get("offset") or 0),
            prints=dict(carry.get("prints") or {}),
        )

    def to_carry(self) -> dict[str, Any]:
        """The run as the trigger carries it (JSON, the keys earlier releases read)."""
        return {
            "cursor": self.cursor,
            "after": self.after,
            "window": dict(self.window),
            "ahead": list(self.ahead),
            **self.counts(),
            "state": {"snapshot": self.snapshot, "offset": self.offset},
            "prints": dict(self.prints),
        }

    def take(self, name: str) -> None:
        """Move the cursor past the track ``name``."""
        self.cursor += 1
        self.after = name

    def tally(self, status: Any) -> None:
        """Count one recorded track (status SUCCEEDED, SKIPPED, REMOVED, or anything else: failed)."""
        key = _COUNTED_AS.get(str(status), "failed")
        setattr(self, key, getattr(self, key) + 1)

    @property
    def processed(self) -> int:
        """Tracks that got a job (or failed before one) in this run: succeeded plus failed."""
        return self.succeeded + self.failed

    def counts(self) -> dict[str, int]:
        """``{"succeeded", "failed", "skipped", "removed"}``, as the summary and the carry name them."""
        return {key: getattr(self, key) for key in ("succeeded", "failed", "skipped", "removed")}
