"""The storage listener: a raw ASGI app serving signed ``PUT``/``GET``/``HEAD`` on ``/storage/<key>``.

Uploads are streamed to a temp file and renamed into place only when exactly ``Content-Length`` bytes
arrived; downloads are streamed from disk in large chunks. Errors are GCS-like XML documents.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from email.utils import formatdate
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from .counters import Counters
from .middleware import Receive, Scope, Send
from .storage import STORAGE_PREFIX, BlobStore, SignatureError, UrlSigner, discard, is_valid_key

READ_CHUNK = 1 << 20
WRITE_CHUNK = 1 << 20


class StorageApp:
    """ASGI app of the storage listener."""

    def __init__(
        self, store: BlobStore, signer: UrlSigner, counters: Counters, api_keys: Callable[[], frozenset[str]]
    ) -> None:
        self.store, self.signer, self.counters, self.api_keys = store, signer, counters, api_keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if self._leaks_a_key(headers, query):
            self.counters.credential_leak()
        if "authorization" in headers:
            await _error(
                send, 400, "InvalidArgument", "Signed URL requests must not carry an Authorization header."
            )
            return
        key = path[len(STORAGE_PREFIX) :] if path.startswith(STORAGE_PREFIX) else ""
        if not is_valid_key(key):
            await _error(send, 404, "NoSuchKey", "The specified key does not exist.")
            return
        if method not in ("GET", "HEAD", "PUT"):
            await _error(
                send,
                405,
                "MethodNotAllowed",
                f"{method} is not allowed on signed URLs.",
                [(b"allow", b"GET, HEAD, PUT")],
            )
            return
        try:
            self.signer.check(method, path, query)
        except SignatureError as exc:
            await _error(send, exc.status, exc.code, str(exc), details=exc.details)
            return
        if method == "PUT":
            await self._put(key, headers, receive, send)
        else:
            await self._get(key, method, headers, send)

    def _leaks_a_key(self, headers: dict[str, str], query: dict[str, str]) -> bool:
        """Whether the request carries an API key: in Authorization, or as a header or query value."""
        keys = self.api_keys()
        authorization = headers.get("authorization", "")
        if any(key in authorization for key in keys):
            return True
        return any(value.strip() in keys for value in (*headers.values(), *query.values()))

    async def _put(self, key: str, headers: dict[str, str], receive: Receive, send: Send) -> None:
        raw_length = headers.get("content-length", "")
        # Cloud Storage requires Content-Length "unless you are using chunked transfer encoding".
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if not chunked and not raw_length.isdigit():
            await _error(
                send, 411, "MissingContentLength", "You must provide the Content-Length HTTP header."
            )
            return
        length = None if chunked else int(raw_length)
        generation = self.store.generation
        tmp = self.store.temp_path()
        loop = asyncio.get_running_loop()
        fd = await loop.run_in_executor(None, os.open, str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        received, complete = 0, False
        pending: asyncio.Future[None] | None = None
        try:
            chunks: list[bytes] = []
            buffered, more = 0, True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                more = message.get("more_body", False)
                if chunk:
                    chunks.append(chunk)
                    buffered += len(chunk)
                if buffered >= WRITE_CHUNK or not more:
                    # Write the previous chunk while the next one is received: at most 2 in memory.
                    if pending is not None:
                        await pending
                    pending = loop.run_in_executor(None, _write_all, fd, chunks)
                    received += buffered
                    chunks, buffered = [], 0
            if pending is not None:
                await pending
            complete = length is None or received == length
        finally:

            def cleanup(_: object = None) -> None:
                os.close(fd)
                if not complete:
                    discard(tmp)

            # Even if this task is cancelled here, the file is closed (and an incomplete one
            # removed) once the last write finishes: never before it, never not at all.
            if pending is not None and not pending.done():
                pending.add_done_callback(cleanup)
            else:
                cleanup()
        if not complete:
            await _error(send, 400, "IncompleteBody", "The body does not match the Content-Length header.")
            return
        content_type = headers.get("content-type", "application/octet-stream")
        blob = await loop.run_in_executor(None, self.store.commit, tmp, key, content_type, generation)
        if blob is not None:
            self.counters.stored(blob.size)
        etag = blob.etag.encode() if blob is not None else b'"0"'
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"0"), (b"etag", etag)],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _get(self, key: str, method: str, headers: dict[str, str], send: Send) -> None:
        blob = self.store.get(key)
        if blob is None:
            await _error(send, 404, "NoSuchKey", "The specified key does not exist.")
            return
        start, end = 0, blob.size
        status = 200
        extra: list[tuple[bytes, bytes]] = []
        if "range" in headers:
            parsed = _parse_range(headers["range"], blob.size)
            if parsed is None:
                await _error(
                    send, 416, "InvalidRange", "The requested range is not satisfiable.",
                    [(b"content-range", f"bytes */{blob.size}".encode())],
                )  # fmt: skip
                return
            if parsed != (0, blob.size) or blob.size == 0:
                start, end = parsed
                status = 206
                extra.append((b"content-range", f"bytes {start}-{end - 1}/{blob.size}".encode()))
        response_headers = [
            (b"content-type", blob.content_type.encode("latin-1")),
            (b"content-length", str(end - start).encode()),
            (b"accept-ranges", b"bytes"),
            (b"etag", blob.etag.encode()),
            (b"last-modified", formatdate(blob.created_at, usegmt=True).encode()),
            *extra,
        ]
        if method == "HEAD":
            await send({"type": "http.response.start", "status": status, "headers": response_headers})
            await send({"type": "http.response.body", "body": b""})
            return
        loop = asyncio.get_running_loop()
        try:
            fd = await loop.run_in_executor(None, os.open, str(blob.path), os.O_RDONLY)
        except FileNotFoundError:
            await _error(send, 404, "NoSuchKey", "The specified key does not exist.")
            return
        try:
            await send({"type": "http.response.start", "status": status, "headers": response_headers})
            position = start
            while position < end:
                data = await loop.run_in_executor(
                    None, os.pread, fd, min(READ_CHUNK, end - position), position
                )
                if not data:
                    break
                position += len(data)
                await send({"type": "http.response.body", "body": data, "more_body": position < end})
                self.counters.served(len(data))
            if position < end:
                raise RuntimeError("blob shrank while being served")
            if start == end:
                await send({"type": "http.response.body", "body": b""})
        finally:
            os.close(fd)


def _write_all(fd: int, chunks: list[bytes]) -> None:
    """Write every byte of ``chunks`` to ``fd``."""
    views = [memoryview(chunk) for chunk in chunks]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """Parse a single ``bytes=`` range into ``[start, end)``; None if unsatisfiable/unsupported."""
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return (0, size)
    first, _, last = spec.strip().partition("-")
    try:
        if not first:
            length = int(last)
            return (max(0, size - length), size) if length > 0 and size > 0 else None
        start = int(first)
        end = min(int(last) + 1, size) if last else size
    except ValueError:
        return (0, size)
    return (start, end) if start < end else None


async def _error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    details: str | None = None,
) -> None:
    """Answer a Cloud Storage XML error document."""
    details = details if details is not None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = (
        "<?xml version='1.0' encoding='UTF-8'?>"
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Details>{escape(details)}</Details></Error>"
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/xml; charset=UTF-8"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
