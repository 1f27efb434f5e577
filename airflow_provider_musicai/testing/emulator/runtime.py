"""The emulator's shared state container, used by the API, admin and storage apps."""

from __future__ import annotations

import asyncio
import copy
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .clock import Clock
from .counters import Counters
from .faults import FaultPlan
from .processing import JobRunner
from .state import Application, EmulatorConfig, JobStore, make_applications
from .storage import BlobStore, UrlSigner


class Emulator:
    """Everything one emulator instance knows: config, applications, jobs, blobs, faults and counters."""

    def __init__(
        self,
        *,
        api_url: str,
        storage_url: str,
        storage_address: tuple[str, int],
        api_keys: Mapping[str, str] | None = None,
        config: EmulatorConfig | None = None,
        storage_dir: Path | None = None,
        secret: bytes | None = None,
    ) -> None:
        self.api_url = api_url
        self.storage_url = storage_url
        self.storage_address = storage_address
        self.config = config or EmulatorConfig()
        self._initial_config = copy.deepcopy(self.config)
        self.clock = Clock(frozen=self.config.manual_clock)
        self.apps: dict[str, Application] = make_applications(api_keys)
        self.api_key_set = frozenset(self.apps)
        self.jobs = JobStore(self.clock)
        self.store = BlobStore(storage_dir)
        self.signer = UrlSigner(secret or secrets.token_bytes(32), storage_url, self.clock.now)
        self.counters = Counters()
        self.faults = FaultPlan()
        self._runner: JobRunner | None = None

    @property
    def runner(self) -> JobRunner:
        """The job runner (available once :meth:`start` ran)."""
        if self._runner is None:
            raise RuntimeError("the emulator is not started")
        return self._runner

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start background job processing on ``loop``."""
        self.clock.attach(loop)
        self._runner = JobRunner(loop, self.store, self.signer, self.config, self.storage_address, self.clock)

    def close(self) -> None:
        """Stop processing and delete the blobs (and the storage folder if the emulator created it)."""
        self.jobs.reset()
        if self._runner is not None:
            self._runner.close()
        self.store.close()

    def configure(self, changes: Mapping[str, Any]) -> None:
        """Change the runtime config (ValueError naming a bad key) and apply it to the clock and runner."""
        self.config.update(changes)
        self.clock.set_frozen(self.config.manual_clock)
        if self._runner is not None:
            self._runner.pump_all()

    def reset(self, *, config: bool = False, blobs: bool = True) -> None:
        """Drop jobs, faults and counters (and blobs unless ``blobs`` is false; config too if ``config``).

        The clock goes back to real time (frozen there if ``manual_clock``).
        """
        self.jobs.reset()
        if self._runner is not None:
            self._runner.reset()
        self.faults = FaultPlan()
        self.counters.reset()
        if blobs:
            self.store.reset()
        if config:
            fresh = copy.deepcopy(self._initial_config)
            self.config.update(fresh.to_json())
        self.clock.reset(frozen=self.config.manual_clock)
