"""Runs the emulator: binds the API and storage listeners and serves both with uvicorn on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from .app import create_app
from .connections import ConnectionTracker, protocol_class
from .middleware import EmulatorMiddleware
from .runtime import Emulator
from .state import EmulatorConfig
from .storage_app import StorageApp
from .tls import TlsFiles, make_tls_files

logger = logging.getLogger(__name__)


@dataclass
class ServerOptions:
    """How to run an emulator."""

    host: str = "127.0.0.1"
    port: int = 0
    storage_host: str | None = None
    storage_port: int = 0
    #: Serve result files on their own origin (host:port), as the service does (``cdn.music.ai``).
    separate_results: bool = False
    results_port: int = 0
    #: Serve every listener over HTTPS with a generated CA (implies ``separate_results``).
    https: bool = False
    api_keys: Mapping[str, str] | None = None
    queued_seconds: float | None = None
    processing_seconds: float | None = None
    storage_dir: Path | None = None
    http: str = "auto"
    backlog: int = 2048
    keep_alive_seconds: float = 30.0
    write_buffer_bytes: int = 4 << 20
    config: dict[str, Any] = field(default_factory=dict)
    #: Workflow declarations (see :mod:`.catalog`) present from startup and after every config reset.
    workflows: list[Any] = field(default_factory=list)
    #: External input URL -> local file (see :meth:`.runtime.Emulator.set_input_files`).
    input_files: dict[str, str] = field(default_factory=dict)


def bind_socket(host: str, port: int, backlog: int) -> socket.socket:
    """Bind a listening TCP socket (port 0 picks a free port)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def url_host(host: str, sock: socket.socket) -> str:
    """The host to put in URLs for a socket bound to ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :class:`EmulatorRunner`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class EmulatorRunner:
    """One emulator instance: two listeners (API, storage) served on the current event loop."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        storage_host = options.storage_host or options.host
        self._api_sock = bind_socket(options.host, options.port, options.backlog)
        try:
            self._storage_sock = bind_socket(storage_host, options.storage_port, options.backlog)
        except OSError:
            self._api_sock.close()
            raise
        self._results_sock: socket.socket | None = None
        if options.separate_results or options.https:
            try:
                self._results_sock = bind_socket(storage_host, options.results_port, options.backlog)
            except OSError:
                self._api_sock.close()
                self._storage_sock.close()
                raise
        scheme = "https" if options.https else "http"
        self.port = self._api_sock.getsockname()[1]
        self.storage_port = self._storage_sock.getsockname()[1]
        self.base_url = f"{scheme}://{url_host(options.host, self._api_sock)}:{self.port}"
        self.storage_url = f"{scheme}://{url_host(storage_host, self._storage_sock)}:{self.storage_port}"
        self.results_port: int | None = None
        self.results_url = self.storage_url
        if self._results_sock is not None:
            self.results_port = self._results_sock.getsockname()[1]
            self.results_url = f"{scheme}://{url_host(storage_host, self._results_sock)}:{self.results_port}"
        config = EmulatorConfig()
        overrides = dict(options.config)
        if options.queued_seconds is not None:
            overrides["queued_seconds"] = options.queued_seconds
        if options.processing_seconds is not None:
            overrides["processing_seconds"] = options.processing_seconds
        config.update(overrides)
        self.emulator = Emulator(
            api_url=self.base_url + "/v1",
            storage_url=self.storage_url,
            storage_address=(storage_host, self.storage_port),
            api_keys=options.api_keys,
            config=config,
            storage_dir=options.storage_dir,
            results_url=self.results_url,
            results_port=self.results_port,
        )
        self.tls: TlsFiles | None = None
        if options.https:
            self.tls = make_tls_files(self.emulator.store.root / "tls", [options.host, storage_host])
            self.emulator.ca_path = str(self.tls.ca_path)
        for declaration in options.workflows:
            self.emulator.workflows.declare(declaration, self.emulator.clock.now())
        self.emulator.workflows.mark_startup()
        self.emulator.set_input_files(options.input_files, startup=True)
        self._servers: list[_Server] = []
        self.started = threading.Event()

    @property
    def api_url(self) -> str:
        """Base URL of the public API (``http://host:port/v1``)."""
        return self.emulator.api_url

    def info(self) -> dict[str, Any]:
        """What a client needs to use this emulator."""
        return {
            "base_url": self.base_url,
            "api_url": self.api_url,
            "storage_url": self.storage_url,
            "results_url": self.results_url,
            "ca_path": str(self.tls.ca_path) if self.tls is not None else None,
            "admin_url": self.base_url + "/__emulator__",
            "api_keys": {key: app.name for key, app in self.emulator.apps.items()},
            "storage_dir": str(self.emulator.store.root),
        }

    def _config(self, app: Any, listener: str) -> uvicorn.Config:
        emu = self.emulator
        tracker = ConnectionTracker(listener, emu.counters)
        wrapped = EmulatorMiddleware(app, listener, tracker, emu.counters, lambda: emu.faults)
        return uvicorn.Config(
            wrapped,
            http=protocol_class(self.options.http, tracker, self.options.write_buffer_bytes),
            lifespan="off",
            log_config=None,
            access_log=False,
            log_level="warning",
            backlog=self.options.backlog,
            timeout_keep_alive=int(self.options.keep_alive_seconds),
            timeout_graceful_shutdown=2,
            server_header=False,
            proxy_headers=False,
            ws="none",
            ssl_certfile=str(self.tls.cert_path) if self.tls is not None else None,
            ssl_keyfile=str(self.tls.key_path) if self.tls is not None else None,
        )

    async def serve(self) -> None:
        """Serve both listeners until :meth:`request_stop`."""
        emu = self.emulator
        emu.start(asyncio.get_running_loop())
        storage_app = StorageApp(emu.store, emu.signer, emu.counters, lambda: emu.api_key_set)
        sockets = [self._api_sock, self._storage_sock]
        self._servers = [
            _Server(self._config(create_app(emu), "api")),
            _Server(self._config(storage_app, "storage")),
        ]
        if self._results_sock is not None:
            sockets.append(self._results_sock)
            self._servers.append(_Server(self._config(storage_app, "storage")))
        tasks = [
            asyncio.ensure_future(server.serve(sockets=[sock]))
            for server, sock in zip(self._servers, sockets, strict=True)
        ]
        try:
            while not all(server.started for server in self._servers):
                if any(task.done() for task in tasks):
                    break
                await asyncio.sleep(0.01)
            else:
                self.started.set()
            await asyncio.gather(*tasks)
        finally:
            for server in self._servers:
                server.should_exit = True
            emu.close()
            for sock in sockets:
                sock.close()

    def request_stop(self) -> None:
        """Ask both listeners to shut down (thread-safe)."""
        for server in self._servers:
            server.should_exit = True


class ThreadedEmulator:
    """Runs an :class:`EmulatorRunner` on its own event loop in a daemon thread."""

    def __init__(self, options: ServerOptions) -> None:
        self.runner = EmulatorRunner(options)
        self._thread = threading.Thread(target=self._run, name="musicai-emulator", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self.runner.serve())
        except BaseException as exc:
            self._error = exc
            logger.exception("the emulator thread crashed")

    def start(self, timeout: float = 30.0) -> None:
        """Start serving and wait until both listeners accept connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.runner.started.wait(0.05):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the emulator did not start within {timeout} s: {self._error!r}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread."""
        self.runner.request_stop()
        self._thread.join(timeout)
