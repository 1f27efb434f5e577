"""Helpers of the reliability suites: sizes, figures, checksums, retry counts, secret scans, loopback
guard, waiting on conditions and small hostile servers (raw, gated, cutting proxy)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tests.helpers.airflow import airflow_version

# -- sizes -----------------------------------------------------------------------------------------

#: ``MUSICAI_RELIABILITY_FULL=1`` runs every suite at full size; the default is the reduced CI size.
FULL = os.environ.get("MUSICAI_RELIABILITY_FULL", "").strip().lower() not in ("", "0", "false", "no")


def size(ci: Any, full: Any) -> Any:
    """``full`` when ``MUSICAI_RELIABILITY_FULL`` is set, else ``ci``."""
    return full if FULL else ci


# -- figures ---------------------------------------------------------------------------------------

FIGURES: dict[str, dict[str, Any]] = {}
_FIGURES_LOCK = threading.Lock()


def record(suite: str, name: str, value: Any) -> None:
    """Remember one figure of a suite; printed at the end of the session (and written to
    ``MUSICAI_RELIABILITY_FIGURES`` if set)."""
    with _FIGURES_LOCK:
        FIGURES.setdefault(suite, {})[name] = value


def write_figures(path: Path) -> None:
    """Merge this session's figures into the JSON file ``path`` under the Airflow version and size."""
    existing: dict[str, Any] = {}
    if path.exists():
        with contextlib.suppress(ValueError):
            existing = json.loads(path.read_text())
    key = f"airflow-{airflow_version()}-{'full' if FULL else 'ci'}"
    run = existing.setdefault(key, {})
    for suite, figures in FIGURES.items():
        run.setdefault(suite, {}).update(figures)
    path.write_text(json.dumps(existing, indent=2, sort_keys=True, default=str) + "\n")


#: One summary line of a shared poller (``[musicai] poller_log_interval``), as the poller logs it.
POLLER_SUMMARY = re.compile(
    r"Music AI poller (?P<name>\S+) \(every (?P<every>[\d.]+)s\): waiting on (?P<waiting>\d+) job\(s\); "
    r"last (?P<seconds>[\d.]+)s: (?P<cycles>\d+) cycle\(s\), (?P<requests>\d+) request\(s\) "
    r"\((?P<lists>\d+) listing page\(s\), (?P<reads>\d+) job read\(s\)\), "
    r"at most (?P<busiest>\d+) in one cycle"
)


def poller_summaries(text: str) -> list[dict[str, Any]]:
    """Every poller summary line in ``text`` (a log file, or one message): ``name`` as logged, the
    counts as ints (``every`` and ``seconds`` rounded down)."""
    return [
        {key: value if key == "name" else int(float(value)) for key, value in match.groupdict().items()}
        for match in POLLER_SUMMARY.finditer(text)
    ]


def percentiles(values: Iterable[float]) -> dict[str, float]:
    """p50/p95/p99/max of ``values`` in milliseconds (values are seconds)."""
    ordered = sorted(values)
    if not ordered:
        return {}

    def at(share: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)

    return {
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": round(1000 * ordered[-1], 2),
    }


# -- files -----------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def blob_digests(storage_dir: str | Path) -> dict[str, int]:
    """``{sha256: size}`` of every object the emulator stores (uploads and results)."""
    objects = Path(storage_dir) / "objects"
    return {sha256_file(path): path.stat().st_size for path in objects.iterdir() if path.is_file()}


def leftover_partials(*folders: Path) -> list[Path]:
    """Temporary or partial files (``.<name>.<hex>.part``) left under ``folders``."""
    found: list[Path] = []
    for folder in folders:
        if folder.exists():
            found.extend(path for path in folder.rglob("*") if path.name.endswith(".part"))
    return found


# -- counting what the client logged ---------------------------------------------------------------

#: Loggers whose warnings mark a retry taken by the hook (API calls) or its storage client.
RETRY_LOGGERS = ("airflow_provider_musicai.hooks._calls", "airflow_provider_musicai.hooks._storage")
_RETRY_DELAY = re.compile(r"in (\d+(?:\.\d+)?)s")


class RetryCounter(logging.Handler):
    """Counts the hook's retries (and the backoff they slept) from its own log records."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.retries: Counter[str] = Counter()
        self.backoff_seconds = 0.0
        self._lock_counts = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:
            return
        with self._lock_counts:
            if record.name.endswith("_calls") and "retry" in message:
                self.retries[message.split(":", 1)[0].removeprefix("Music AI ").strip()] += 1
            elif record.name.endswith("_storage") and "starting again" in message:
                self.retries["storage " + message.split(" ", 1)[0]] += 1
            else:
                return
            found = _RETRY_DELAY.search(message)
            if found:
                self.backoff_seconds += float(found.group(1))

    @property
    def total(self) -> int:
        return sum(self.retries.values())


@contextlib.contextmanager
def counting_retries() -> Iterator[RetryCounter]:
    """Attach a :class:`RetryCounter` to the hook's loggers for the duration of the block."""
    counter = RetryCounter()
    loggers = [logging.getLogger(name) for name in RETRY_LOGGERS]
    for logger in loggers:
        logger.addHandler(counter)
    try:
        yield counter
    finally:
        for logger in loggers:
            logger.removeHandler(counter)


# -- secrets ---------------------------------------------------------------------------------------

SIGNATURE = re.compile(r"X-Signature=([0-9a-f]{64})")


def signatures_in(text: str) -> set[str]:
    """The signed-URL signatures (hex HMACs) found in ``text``."""
    return set(SIGNATURE.findall(text))


def secret_hits(text: str, secrets: Iterable[str]) -> list[str]:
    """Every secret of ``secrets`` that occurs in ``text`` (empty list: clean)."""
    return sorted({secret for secret in secrets if secret and secret in text})


def all_rows_text() -> str:
    """Every row of every table of Airflow's metadata database, as text."""
    from airflow import settings
    from sqlalchemy import inspect, text

    engine = settings.engine
    assert engine is not None
    chunks: list[str] = []
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            with contextlib.suppress(Exception):
                rows = connection.execute(text(f'SELECT * FROM "{table}"'))
                chunks.extend(f"{table}: {tuple(row)!r}" for row in rows)
    return "\n".join(chunks)


# -- loopback only ---------------------------------------------------------------------------------

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: Any) -> bool:
    """True for loopback names and addresses."""
    import ipaddress

    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").lower().rstrip(".")
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class LoopbackGuard:
    """Refuses (as an unresolvable name) every lookup of a host that is not loopback, so that no
    test in this process can send a packet anywhere else; remembers what was refused."""

    def __init__(self) -> None:
        self.refused: list[str] = []
        self._real = socket.getaddrinfo

    def getaddrinfo(self, host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is None or is_loopback(host):
            return self._real(host, *args, **kwargs)
        self.refused.append(str(host))
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: refused by the reliability suites (not loopback)")


class _Condition:
    """A condition checked until a deadline: :meth:`met` is its truthy value, or None while it is not
    met yet, and fails naming ``what`` once the deadline has passed."""

    def __init__(self, what: str, check: Any, timeout: float) -> None:
        self.what, self.check, self.timeout = what, check, timeout
        self.deadline = time.monotonic() + timeout

    def met(self) -> Any:
        value = self.check()
        if value:
            return value
        if time.monotonic() > self.deadline:
            raise AssertionError(f"timed out after {self.timeout}s waiting for {self.what}")
        return None


def wait_until(what: str, check: Any, timeout: float = 60.0, interval: float = 0.05) -> Any:
    """Poll ``check()`` until it is truthy; return its value or fail naming ``what``."""
    condition = _Condition(what, check, timeout)
    while (value := condition.met()) is None:
        time.sleep(interval)
    return value


async def wait_until_async(what: str, check: Any, timeout: float = 60.0, interval: float = 0.01) -> Any:
    """:func:`wait_until` inside an event loop: the loop runs (pollers, triggers) between checks."""
    condition = _Condition(what, check, timeout)
    while (value := condition.met()) is None:
        await asyncio.sleep(interval)
    return value


class GatedFileServer:
    """A loopback HTTP server (a third-party host holding the input) that serves one file, each
    request held until :meth:`release`: a job fetching its input from here stays STARTED."""

    def __init__(self, data: bytes) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.gate = threading.Event()
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                server.gate.wait(600)
                self.send_response(200)
                self.send_header("Content-Type", "audio/wav")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/track.wav"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def release(self) -> None:
        self.gate.set()

    def close(self) -> None:
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class CuttingProxy:
    """A loopback TCP proxy to ``port``. The first connection is cut once ``cut_after`` bytes came
    from the client: abruptly (both sides reset) or, with ``hold``, by stopping to forward and
    waiting for the client to go away (then the upstream is reset). Later connections pass."""

    def __init__(self, port: int, cut_after: int, *, hold: bool = False) -> None:
        self.target = port
        self.cut_after = cut_after
        self.hold = hold
        self.reached = threading.Event()
        self.connections = 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            cut = self.connections == 1
            threading.Thread(target=self._serve, args=(client, cut), daemon=True).start()

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        """Close now (a recv blocked in another thread would otherwise keep the socket open)."""
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def _serve(self, client: socket.socket, cut: bool) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target))

        def back() -> None:
            with contextlib.suppress(OSError):
                while data := upstream.recv(65536):
                    client.sendall(data)

        threading.Thread(target=back, daemon=True).start()
        forwarded = 0
        try:
            while data := client.recv(65536):
                if cut and forwarded + len(data) >= self.cut_after:
                    upstream.sendall(data[: self.cut_after - forwarded])
                    self.reached.set()
                    if self.hold:
                        while client.recv(65536):  # until the client dies
                            pass
                    break
                upstream.sendall(data)
                forwarded += len(data)
        except OSError:
            pass
        if cut:
            self._reset(upstream)
            self._reset(client)
        else:
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


def route_uploads_through(port: int, hook: Any) -> None:
    """Send ``hook``'s upload PUTs (only them) through a loopback proxy on ``port``: the URL's
    signature covers the method, path and expiry, not the host."""
    real = hook.get_upload_url

    def get_upload_url() -> dict[str, str]:
        urls = dict(real())
        origin = urls["uploadUrl"].split("/storage/", 1)[0]
        urls["uploadUrl"] = urls["uploadUrl"].replace(origin, f"http://127.0.0.1:{port}", 1)
        return urls

    hook.get_upload_url = get_upload_url
