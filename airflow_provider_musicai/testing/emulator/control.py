"""Client side of the emulator (stdlib only): start/stop it and drive its admin API.

:class:`EmulatorServer` starts an emulator in a subprocess (default: the code under test keeps its own GIL)
or in a thread; :class:`EmulatorHandle` attaches to one already running (e.g. started from the CLI).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class EmulatorError(RuntimeError):
    """The emulator could not be started or its admin API refused a request."""


class EmulatorAdmin:
    """Calls to the admin API (``<base_url>/__emulator__``)."""

    def __init__(self, base_url: str, timeout: float = 30.0, ca_path: str | None = None) -> None:
        self.url = base_url.rstrip("/") + "/__emulator__"
        self.timeout = timeout
        self._opener = _OPENER
        if ca_path is not None:
            context = ssl.create_default_context(cafile=ca_path)
            self._opener = urllib.request.build_opener(
                urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
            )

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310 (http only)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise EmulatorError(
                f"{method} {path}: HTTP {exc.code}: {exc.read().decode(errors='replace')}"
            ) from exc

    def health(self) -> bool:
        """Whether the emulator answers."""
        try:
            return bool(self._call("GET", "/health"))
        except (OSError, EmulatorError):
            return False

    def info(self) -> dict[str, Any]:
        """URLs, API keys and storage folder of the emulator."""
        return dict(self._call("GET", "/info"))

    def reset(self, *, config: bool = False, blobs: bool = True) -> None:
        """Drop jobs, faults, counters, blobs (unless ``blobs=False``); startup config too if ``config``."""
        self._call("POST", "/reset", {"config": config, "blobs": blobs})

    def config(self) -> dict[str, Any]:
        """The runtime config."""
        return dict(self._call("GET", "/config"))

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change runtime config: ``queued_seconds``, ``processing_seconds``, ``list_shape``, TTLs..."""
        return dict(self._call("POST", "/config", changes))

    def clock(self) -> dict[str, Any]:
        """``{"now": <emulated Unix time>, "frozen": bool}``."""
        return dict(self._call("GET", "/clock"))

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move emulated time forward (jobs progress, signed URLs expire) without sleeping."""
        return dict(self._call("POST", "/clock/advance", {"seconds": seconds}))

    def complete_job(self, job_id: str) -> dict[str, Any]:
        """Skip the rest of a job's QUEUED and STARTED time: it ends as soon as it is processed."""
        return dict(self._call("POST", f"/jobs/{quote(job_id, safe='')}/complete"))

    def freeze_clock(self, frozen: bool = True) -> dict[str, Any]:
        """Stop (or with ``frozen=False`` resume) time-driven progress: the ``manual_clock`` config."""
        return self.configure(manual_clock=frozen)

    def add_history(self, count: int, **fields: Any) -> int:
        """Keep ``count`` jobs already finished on the account, older than every job it has (no
        processing runs for them). ``fields``: ``status`` (SUCCEEDED or FAILED), ``workflow``,
        ``batchName``, ``metadata``, ``api_key``, ``spacing_seconds`` (between creations)."""
        return int(self._call("POST", "/jobs/history", {"count": count, **fields})["added"])

    def workflows(self) -> list[dict[str, Any]]:
        """Every workflow (declared and built-in), newest first, as ``GET /workflow`` lists them."""
        return list(self._call("GET", "/workflows")["workflows"])

    def declare_workflow(self, declaration: Mapping[str, Any]) -> dict[str, Any]:
        """Declare (or replace) a workflow until a config reset (see
        the emulator's ``catalog.py`` for the shape)."""
        return dict(self._call("POST", "/workflows", declaration))

    def remove_workflow(self, slug: str) -> None:
        """Forget a declared workflow."""
        self._call("DELETE", "/workflows/" + quote(slug, safe="/"))

    def set_input_files(self, files: Mapping[str, str | Path]) -> dict[str, str]:
        """Serve external input URLs (e.g. ``https://music.ai/demo.ogg``) from local files, offline."""
        body = {"files": {url: str(Path(path).resolve()) for url, path in files.items()}}
        return dict(self._call("POST", "/input-files", body)["files"])

    def set_faults(self, plan: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        """Replace the fault plan (see :mod:`.faults` for its fields); returns the plan as parsed."""
        return dict(self._call("POST", "/faults", {**(plan or {}), **fields}))

    def script_faults(self, *entries: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the fault plan by a script, e.g. ``{"match": "POST /v1/job", "fault": "drop"}``."""
        return self.set_faults(script=list(entries))

    def fail_jobs(
        self, count: int = 1, *, code: str = "INTERNAL_ERROR", workflows: Sequence[str] | None = None
    ) -> None:
        """Shortcut: the next ``count`` jobs (of ``workflows``, default any) end FAILED with ``code``."""
        self.set_faults(
            job_errors={"next": count, "code": code, "workflows": list(workflows) if workflows else None}
        )

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._call("DELETE", "/faults")

    def faults(self) -> dict[str, Any]:
        """The current fault plan with remaining script counts."""
        return dict(self._call("GET", "/faults"))

    def counters(self) -> dict[str, Any]:
        """Request, status, job, storage, fault and connection counters."""
        return dict(self._call("GET", "/counters"))

    def jobs(self) -> list[dict[str, Any]]:
        """Every job of every application (newest first), as ``GET /job/{id}`` documents."""
        return list(self._call("GET", "/jobs")["jobs"])

    def storage(self) -> dict[str, Any]:
        """``{"objects": n, "temp_files": n, "storage_dir": path}``."""
        return dict(self._call("GET", "/storage"))


class EmulatorHandle:
    """URLs, keys, admin client and Airflow connection of a running emulator."""

    def __init__(self, info: Mapping[str, Any]) -> None:
        self.info = dict(info)
        self.base_url: str = self.info["base_url"]
        self.api_url: str = self.info["api_url"]
        self.storage_url: str = self.info["storage_url"]
        #: Origin of result URLs (the upload origin unless the emulator serves results separately).
        self.results_url: str = self.info.get("results_url") or self.storage_url
        #: The CA certificate (PEM) to trust when the emulator serves HTTPS, else None.
        self.ca_path: str | None = self.info.get("ca_path")
        self.api_keys: dict[str, str] = dict(self.info["api_keys"])
        self.admin = EmulatorAdmin(self.base_url, ca_path=self.ca_path)

    @classmethod
    def connect(cls, base_url: str, ca_path: str | None = None) -> EmulatorHandle:
        """Attach to an emulator already serving at ``base_url`` (``http(s)://host:port``)."""
        info = EmulatorAdmin(base_url, ca_path=ca_path).info()
        return cls({**info, "base_url": base_url.rstrip("/")})

    @property
    def api_key(self) -> str:
        """The first API key (``test-api-key`` by default)."""
        return next(iter(self.api_keys))

    @property
    def other_api_key(self) -> str:
        """The second API key (``other-api-key`` by default), for isolation tests."""
        keys = list(self.api_keys)
        if len(keys) < 2:
            raise EmulatorError("the emulator has a single API key")
        return keys[1]

    def headers(self, api_key: str | None = None) -> dict[str, str]:
        """Headers authenticating an API request."""
        return {"Authorization": api_key or self.api_key}

    def connection_dict(self, api_key: str | None = None) -> dict[str, Any]:
        """The Airflow connection as a dict (``conn_type``, ``host`` = API URL, ``password`` = key)."""
        return {"conn_type": "musicai", "host": self.api_url, "password": api_key or self.api_key}

    def connection_json(self, api_key: str | None = None) -> str:
        """The Airflow connection in JSON form, for ``AIRFLOW_CONN_MUSICAI_DEFAULT``."""
        return json.dumps(self.connection_dict(api_key))

    def connection_uri(self, api_key: str | None = None) -> str:
        """The Airflow connection as a URI (host = the URL-encoded API URL, password = key)."""
        return f"musicai://:{quote(api_key or self.api_key, safe='')}@{quote(self.api_url, safe='')}"


class EmulatorServer:
    """Starts an emulator (subprocess by default, or thread) on free ports unless ports are given.

    Usage: ``with EmulatorServer() as emu: requests.get(emu.api_url + "/upload", headers=emu.headers())``.
    Once started it owns an :class:`EmulatorHandle` (``handle``) and offers its URLs, keys and admin client.
    """

    def __init__(
        self,
        *,
        mode: Literal["subprocess", "thread"] = "subprocess",
        host: str = "127.0.0.1",
        port: int = 0,
        storage_host: str | None = None,
        storage_port: int = 0,
        api_keys: Mapping[str, str] | None = None,
        queued_seconds: float | None = None,
        processing_seconds: float | None = None,
        storage_dir: str | Path | None = None,
        http: Literal["auto", "httptools", "h11"] = "auto",
        startup_timeout: float = 30.0,
        python: str | None = None,
        log_file: str | Path | None = None,
        config: Mapping[str, Any] | None = None,
        workflows: Sequence[Mapping[str, Any]] | None = None,
        input_files: Mapping[str, str | Path] | None = None,
        https: bool = False,
        separate_results: bool = False,
    ) -> None:
        if mode not in ("subprocess", "thread"):
            raise ValueError("mode must be 'subprocess' or 'thread'")
        self.mode = mode
        self._options: dict[str, Any] = {
            "host": host,
            "port": port,
            "storage_host": storage_host,
            "storage_port": storage_port,
            "api_keys": dict(api_keys) if api_keys else None,
            "queued_seconds": queued_seconds,
            "processing_seconds": processing_seconds,
            "storage_dir": Path(storage_dir) if storage_dir else None,
            "http": http,
            "config": dict(config or {}),
            "workflows": [dict(w) for w in workflows or ()],
            "https": https,
            "separate_results": separate_results,
            "input_files": {url: str(Path(p).resolve()) for url, p in (input_files or {}).items()},
        }
        self._startup_timeout = startup_timeout
        self._python = python or sys.executable
        self._log_file = Path(log_file) if log_file else None
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: Any = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._handle: EmulatorHandle | None = None

    @property
    def handle(self) -> EmulatorHandle:
        """URLs, keys and admin client of the running emulator (EmulatorError before :meth:`start`)."""
        if self._handle is None:
            raise EmulatorError("the emulator is not started")
        return self._handle

    @property
    def info(self) -> dict[str, Any]:
        """What the emulator reported when it started."""
        return self.handle.info

    @property
    def base_url(self) -> str:
        """``http(s)://host:port`` of the API listener."""
        return self.handle.base_url

    @property
    def api_url(self) -> str:
        """Base URL of the public API (``.../v1``)."""
        return self.handle.api_url

    @property
    def storage_url(self) -> str:
        """Origin of upload URLs."""
        return self.handle.storage_url

    @property
    def results_url(self) -> str:
        """Origin of result URLs."""
        return self.handle.results_url

    @property
    def ca_path(self) -> str | None:
        """The CA (PEM) to trust when serving HTTPS."""
        return self.handle.ca_path

    @property
    def api_keys(self) -> dict[str, str]:
        """API key -> application name."""
        return self.handle.api_keys

    @property
    def admin(self) -> EmulatorAdmin:
        """The admin API client."""
        return self.handle.admin

    @property
    def api_key(self) -> str:
        """The first API key."""
        return self.handle.api_key

    @property
    def other_api_key(self) -> str:
        """The second API key."""
        return self.handle.other_api_key

    def headers(self, api_key: str | None = None) -> dict[str, str]:
        """Headers authenticating an API request."""
        return self.handle.headers(api_key)

    def connection_dict(self, api_key: str | None = None) -> dict[str, Any]:
        """The Airflow connection as a dict."""
        return self.handle.connection_dict(api_key)

    def connection_json(self, api_key: str | None = None) -> str:
        """The Airflow connection in JSON form."""
        return self.handle.connection_json(api_key)

    def connection_uri(self, api_key: str | None = None) -> str:
        """The Airflow connection as a URI."""
        return self.handle.connection_uri(api_key)

    @property
    def running(self) -> bool:
        """Whether the emulator was started and not stopped."""
        return self._process is not None or self._thread is not None

    @property
    def pid(self) -> int:
        """PID of the emulator process (this process in thread mode)."""
        return self._process.pid if self._process is not None else os.getpid()

    @property
    def log_path(self) -> Path | None:
        """The subprocess's combined stdout/stderr log."""
        return self._log_file

    def start(self) -> EmulatorServer:
        """Start the emulator and wait until it serves."""
        if self.running:
            return self
        if self.mode == "thread":
            from .server import ServerOptions, ThreadedEmulator

            thread = ThreadedEmulator(ServerOptions(**self._options))
            thread.start(self._startup_timeout)
            self._thread = thread
            info = thread.runner.info()
        else:
            info = self._start_subprocess()
        self._handle = EmulatorHandle(info)
        return self

    def _command(self, ready_file: Path) -> list[str]:
        opts = self._options
        cmd = [
            self._python,
            "-m",
            "airflow_provider_musicai.testing.emulator",
            "--ready-file",
            str(ready_file),
        ]
        cmd.append("--exit-with-parent")
        cmd += [
            "--host",
            opts["host"],
            "--port",
            str(opts["port"]),
            "--storage-port",
            str(opts["storage_port"]),
        ]
        cmd += ["--http", opts["http"]]
        if opts["storage_host"]:
            cmd += ["--storage-host", opts["storage_host"]]
        for key, name in (opts["api_keys"] or {}).items():
            cmd += ["--api-key", f"{key}={name}"]
        for flag in ("queued_seconds", "processing_seconds"):
            if opts[flag] is not None:
                cmd += ["--" + flag.replace("_", "-"), str(opts[flag])]
        if opts["storage_dir"]:
            cmd += ["--storage-dir", str(opts["storage_dir"])]
        if opts["https"]:
            cmd.append("--https")
        if opts["separate_results"]:
            cmd.append("--separate-results")
        for url, path in opts["input_files"].items():
            cmd += ["--input-file", f"{url}={path}"]
        for key, value in opts["config"].items():
            cmd += ["--set", f"{key}={json.dumps(value)}"]
        if opts["workflows"]:
            declarations = ready_file.with_name("workflows.json")
            declarations.write_text(json.dumps(opts["workflows"]))
            cmd += ["--workflows", str(declarations)]
        return cmd

    def _start_subprocess(self) -> dict[str, Any]:
        self._tmpdir = tempfile.TemporaryDirectory(prefix="musicai-emulator-ctl-")
        ready = Path(self._tmpdir.name) / "ready.json"
        if self._log_file is None:
            self._log_file = Path(self._tmpdir.name) / "emulator.log"
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        with self._log_file.open("ab") as log:
            self._process = subprocess.Popen(
                self._command(ready), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + self._startup_timeout
        while not ready.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self._log_file.read_text(errors="replace")[-2000:]
                raise EmulatorError(f"the emulator did not start (log {self._log_file}):\n{tail}")
            time.sleep(0.02)
        return dict(json.loads(ready.read_text()))

    def stop(self) -> None:
        """Stop the emulator (SIGTERM, then SIGKILL after 10 s) and delete its temporary files."""
        if self._thread is not None:
            self._thread.stop()
            self._thread = None
        if self._process is not None:
            process, self._process = self._process, None
            stop_process(process, grace=10)
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def stop_process(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """Stop a child process: SIGTERM, then SIGKILL if it still runs ``grace`` seconds later."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
