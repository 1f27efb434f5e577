"""A small HTTP server on loopback whose every answer is written by the test: the hostile server.

The emulator answers as the real service does; this server answers however a test wants, to show
what the provider does with servers it did not write (a page-size cap, a repeated page, a gzip bomb,
a trickle, a redirect, a Cloud Storage error body...). It speaks HTTP/1.1 with keep-alive, records
every request it receives, and serves both transports (requests and httpx2) over real sockets.

    def answer(request: Request) -> Reply:
        return Reply(200, json_body={"id": "job-1", "status": "QUEUED"})

    with HostileServer(answer) as server:
        hook = hook_on(server)  # the hook_on fixture
        ...
        assert server.requests[0].headers["authorization"] == KEY
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    """One request as the server received it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Reply:
    """What to send back. ``raw`` replaces the whole answer (status line included) with bytes;
    ``trickle`` sends the body one chunk at a time with that many seconds between chunks;
    ``close`` drops the connection after the answer (or instead of it when ``drop`` is set)."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    json_body: Any = None
    raw: bytes | None = None
    trickle: float | None = None
    trickle_chunk: int = 1
    drop: bool = False
    close: bool = False
    content_length: bool = True

    def payload(self) -> bytes:
        if self.json_body is not None:
            return json.dumps(self.json_body).encode()
        return self.body


Handler = Callable[[Request], Reply]


class HostileServer:
    """A threaded loopback HTTP server answering every request with ``handler(request)``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        owner = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    body = _read_chunked(self.rfile)
                else:
                    body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                )
                with owner._lock:
                    owner.requests.append(request)
                reply = owner.handler(request)
                owner._send(self, reply)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "") -> str:
        """``http://127.0.0.1:<port><path>``."""
        return f"http://127.0.0.1:{self.port}{path}"

    def requests_to(self, method: str, path_prefix: str = "") -> list[Request]:
        """The recorded requests with this method whose path starts with ``path_prefix``."""
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def _send(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        out = handler.wfile
        try:
            if reply.drop:
                handler.close_connection = True
                handler.connection.shutdown(socket.SHUT_RDWR)
                return
            if reply.raw is not None:
                out.write(reply.raw)
                out.flush()
                handler.close_connection = True
                return
            payload = reply.payload()
            handler.send_response_only(reply.status)
            headers = {name.lower(): value for name, value in reply.headers.items()}
            if reply.json_body is not None:
                headers.setdefault("content-type", "application/json")
            if reply.content_length and "content-length" not in headers:
                headers["content-length"] = str(len(payload))
            if not reply.content_length or reply.close:
                headers["connection"] = "close"
                handler.close_connection = True
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            if reply.trickle is None:
                out.write(payload)
            else:
                for start in range(0, len(payload), reply.trickle_chunk):
                    if self._stopping.is_set():
                        break
                    out.write(payload[start : start + reply.trickle_chunk])
                    out.flush()
                    time.sleep(reply.trickle)
            out.flush()
        except OSError:
            handler.close_connection = True

    def close(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_chunked(stream: Any) -> bytes:
    body = bytearray()
    while True:
        size = int(stream.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            stream.readline()
            return bytes(body)
        body += stream.read(size)
        stream.readline()


def paged(items: Iterable[Any], request: Request, *, served_size: int | None = None) -> list[Any]:
    """One page of ``items`` as a server that honours ``page``/``size`` would serve it, but never
    more than ``served_size`` items (a silent server-side cap) when that is given."""
    everything = list(items)
    page = int(request.param("page", "0") or 0)
    size = int(request.param("size", "100") or 100)
    if served_size is not None:
        size = min(size, served_size)
    return everything[page * size : (page + 1) * size]


class JobListingAPI:
    """A Music AI API whose ``GET /job`` ignores its filters: a cache, a proxy or a server bug.

    ``jobs`` (documents by id, set by the test) answer ``GET /job/:id``; ``GET /job`` lists them all
    whatever the ``workflow`` and ``batchName`` asked, and whatever the ``status`` unless
    ``honour_status``. Listings beyond ``max_listings`` answer 401, so that a client which keeps
    polling a job it should have let go fails fast instead of hanging the test.

    ``newest_first`` lists by ``createdAt``, newest first (else in the order the jobs were put);
    ``before_listing(request)`` runs before each ``GET /job`` is answered (to change the jobs
    between two pages); ``gets`` counts the ``GET /job/:id``.
    """

    def __init__(
        self,
        *,
        honour_status: bool = False,
        max_listings: int | None = None,
        newest_first: bool = False,
        before_listing: Callable[[Request], None] | None = None,
    ) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.honour_status = honour_status
        self.max_listings = max_listings
        self.newest_first = newest_first
        self.before_listing = before_listing
        self.listings = 0
        self.gets = 0
        self.lock = threading.Lock()

    def put(self, job_id: str, **fields: Any) -> None:
        """Add or update job ``job_id`` (``status`` defaults to QUEUED, ``workflow`` to ``wf``)."""
        with self.lock:
            job = self.jobs.setdefault(job_id, {"id": job_id, "status": "QUEUED", "workflow": "wf"})
            job.update(fields)

    def __call__(self, request: Request) -> Reply:
        if self.before_listing is not None and request.path.endswith("/job"):
            self.before_listing(request)
        with self.lock:
            if request.path.endswith("/workflow"):
                return Reply(200, json_body={"workflows": []})
            if not request.path.endswith("/job"):
                self.gets += 1
                job = self.jobs.get(request.path.rsplit("/", 1)[-1])
                return Reply(200, json_body=dict(job)) if job else Reply(404, json_body={"message": "no job"})
            self.listings += 1
            if self.max_listings is not None and self.listings > self.max_listings:
                return Reply(401, json_body={"message": f"test budget of {self.max_listings} listings spent"})
            wanted = set(request.query.get("status", []))
            listed = [
                dict(job)
                for job in self.jobs.values()
                if not (self.honour_status and wanted) or job.get("status") in wanted
            ]
            if self.newest_first:
                listed.sort(key=lambda job: str(job.get("createdAt") or ""), reverse=True)
        return Reply(200, json_body={"jobs": paged(listed, request)})
