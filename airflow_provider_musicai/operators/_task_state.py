"""One key of Airflow 3.3's task state store, read and written best-effort.

The store (``context["task_state_store"]``, Airflow 3.3+) spares a retry a lookup: the
reattachment ledger keeps its job's key there, the catalog its in-flight window. Neither may fail
a task over it: without a store (older Airflow) or when it errs, reading gives None and writing
does nothing, and the next try looks its jobs up in the API instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_musicai.common import SupportsLog


class TaskStateSlot:
    """The record under ``key`` in a task instance's state store (``store`` None: none kept)."""

    def __init__(self, store: Any, key: str, log: SupportsLog, fallback: str) -> None:
        self.store = store
        self.key = key
        self.log = log
        #: What happens instead when the store fails, for the warning.
        self.fallback = fallback

    @classmethod
    def of(cls, context: Mapping[str, Any], key: str, log: SupportsLog, fallback: str) -> TaskStateSlot:
        """The slot in ``context``'s store (Airflow 3.3+; earlier releases have none)."""
        return cls(context.get("task_state_store"), key, log, fallback)

    def get(self) -> dict[str, Any] | None:
        """The record, or None (no store, nothing recorded, not a mapping, or the store failed)."""
        if self.store is None:
            return None
        try:
            record = self.store.get(self.key)
        except Exception as exc:
            self.log.warning("Could not read the task state store (%s); %s", exc, self.fallback)
            return None
        return dict(record) if isinstance(record, Mapping) else None

    def set(self, value: Mapping[str, Any]) -> None:
        """Record ``value`` (a failure is logged: the next try falls back)."""
        if self.store is None:
            return
        try:
            self.store.set(self.key, dict(value))
        except Exception as exc:
            self.log.warning("Could not write the task state store (%s); %s", exc, self.fallback)
