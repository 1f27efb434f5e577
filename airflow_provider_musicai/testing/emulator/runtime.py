"""The emulator's shared state container, used by the API, admin and storage apps."""

from __future__ import annotations

import asyncio
import copy
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .catalog import WorkflowCatalog
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
        results_url: str | None = None,
        results_port: int | None = None,
    ) -> None:
        self.api_url = api_url
        self.storage_url = storage_url
        self.results_url = results_url or storage_url
        self.results_port = results_port
        #: PEM file of the CA to trust when the listeners serve HTTPS (set by the server), else None.
        self.ca_path: str | None = None
        self.storage_address = storage_address
        self.config = config or EmulatorConfig()
        self._initial_config = copy.deepcopy(self.config)
        self.clock = Clock(frozen=self.config.manual_clock)
        self.apps: dict[str, Application] = make_applications(api_keys)
        self.api_key_set = frozenset(self.apps)
        self.jobs = JobStore(self.clock)
        self.workflows = WorkflowCatalog()
        #: External input URL -> local file, so that documentation examples run offline (reset restores).
        self.input_files: dict[str, Path] = {}
        self._startup_input_files: dict[str, Path] = {}
        self.store = BlobStore(storage_dir)
        secret = secret or secrets.token_bytes(32)
        self.signer = UrlSigner(secret, storage_url, self.clock.now)
        #: Signs result URLs: on their own origin when the emulator serves one (as the service does).
        self.result_signer = UrlSigner(secret, self.results_url, self.clock.now)
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
        self._runner = JobRunner(
            loop,
            self.store,
            self.result_signer,
            self.config,
            self.storage_address,
            self.clock,
            self.workflows,
            self.input_files.get,
            own_ports=frozenset(p for p in (self.storage_address[1], self.results_port) if p),
        )

    def close(self) -> None:
        """Stop processing and delete the blobs (and the storage folder if the emulator created it)."""
        self.jobs.reset()
        if self._runner is not None:
            self._runner.close()
        self.store.close()

    def set_input_files(self, files: Mapping[str, str | Path], *, startup: bool = False) -> None:
        """Serve these external input URLs from local files (merged into the current map).

        ValueError if a URL is not absolute http(s) or a file does not exist.
        """
        checked: dict[str, Path] = {}
        for url, raw_path in files.items():
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ValueError(f"input file URL {url!r} must be an absolute http(s) URL")
            path = Path(raw_path).resolve()
            if not path.is_file():
                raise ValueError(f"input file for {url!r} does not exist: {path}")
            checked[url] = path
        self.input_files.update(checked)
        if startup:
            self._startup_input_files.update(checked)

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
            self.workflows.restore()
            self.input_files.clear()
            self.input_files.update(self._startup_input_files)
        self.clock.reset(frozen=self.config.manual_clock)
