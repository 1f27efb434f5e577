"""Outermost ASGI layer of each listener: request/status counting and HTTP fault injection."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .connections import Connection, ConnectionTracker
from .counters import Counters
from .faults import Fault, FaultPlan

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ADMIN_PREFIX = "/__emulator__"
#: API listener paths that are neither counted nor faulted (the schema and docs, for fuzzers).
UNTRACKED_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect"})
_TEMPLATES: dict[str, tuple[tuple[re.Pattern[str], str], ...]] = {
    "api": (
        (re.compile(r"^/(?:v1|api)/application$"), "/v1/application"),
        (re.compile(r"^/(?:v1|api)/upload$"), "/v1/upload"),
        (re.compile(r"^/(?:v1|api)/job$"), "/v1/job"),
        (re.compile(r"^/(?:v1|api)/job/[^/]+$"), "/v1/job/{id}"),
        (re.compile(r"^/(?:v1|api)/job/[^/]+/status$"), "/v1/job/{id}/status"),
        (re.compile(r"^/(?:v1|api)/workflow$"), "/v1/workflow"),
    ),
    "storage": ((re.compile(r"^/storage/.+$"), "/storage/{key}"),),
}

_502_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_ERRORS = {
    429: ("Too Many Requests", "Rate limit exceeded, retry later."),
    500: ("Internal Server Error", "Internal server error."),
    503: ("Service Unavailable", "The service is temporarily unavailable, retry later."),
}


def endpoint_template(listener: str, path: str) -> str:
    """The route template of ``path`` (e.g. ``/v1/job/{id}``), or ``<unmatched>``."""
    for pattern, template in _TEMPLATES[listener]:
        if pattern.match(path):
            return template
    return "<unmatched>"


class ConnectionDroppedError(Exception):
    """Raised through the wrapped app once a fault closed the connection, to stop it early."""


class EmulatorMiddleware:
    """Counts public requests and applies the fault plan; the admin API passes straight through."""

    def __init__(
        self,
        app: ASGIApp,
        listener: str,
        tracker: ConnectionTracker,
        counters: Counters,
        faults: Callable[[], FaultPlan],
    ) -> None:
        self.app, self.listener, self.tracker, self.counters, self.faults = (
            app,
            listener,
            tracker,
            counters,
            faults,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            self.listener == "api"
            and (scope["path"].startswith(ADMIN_PREFIX) or scope["path"] in UNTRACKED_PATHS)
        ):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        endpoint = f"{method} {endpoint_template(self.listener, path)}"
        conn = self.tracker.lookup(scope)
        if conn is not None:
            self.tracker.mark_used(conn)
        self.counters.request(endpoint)
        generation = self.counters.generation

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.counters.response(endpoint, message["status"], generation)
            await send(message)

        fault = self.faults().pick(self.listener, method, endpoint.split(" ", 1)[1], path)
        if fault is None:
            await self.app(scope, receive, counting_send)
            return
        self.counters.fault(fault.kind)
        try:
            await self._apply(fault, conn, scope, receive, send, counting_send)
        except ConnectionDroppedError:
            pass
        except BaseException as exc:
            if not _is_dropped(exc):
                raise

    async def _apply(
        self,
        fault: Fault,
        conn: Connection | None,
        scope: Scope,
        receive: Receive,
        send: Send,
        counting_send: Send,
    ) -> None:
        kind = fault.kind
        if kind == "drop":
            await self._close(conn, send, abort=True)
        elif kind == "drop_after":

            async def swallow(message: Message) -> None:
                return None

            await self.app(scope, receive, swallow)
            await self._close(conn, send, abort=True)
        elif kind == "slow":
            await self.app(scope, receive, _delayed(counting_send, fault.seconds))
        elif kind == "truncate":
            await self.app(scope, receive, self._truncating(conn, counting_send, send))
        elif kind == "502":
            await _respond(counting_send, 502, _502_PAGE, b"text/html")
        else:
            status = int(kind)
            title, message = _ERRORS[status]
            body = json.dumps({"statusCode": status, "error": title, "message": message}).encode()
            headers = [(b"retry-after", str(fault.retry_after).encode())] if status in (429, 503) else []
            await _respond(counting_send, status, body, b"application/json; charset=utf-8", headers)

    def _truncating(self, conn: Connection | None, counting_send: Send, raw_send: Send) -> Send:
        state = {"left": 0}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                length = next((int(v) for k, v in headers if k.lower() == b"content-length"), 0)
                if length < 2:
                    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
                    headers.append((b"content-length", b"64"))
                    length = 2
                state["left"] = length // 2
                await counting_send({**message, "headers": headers})
                return
            body = bytes(message.get("body", b""))
            part = body[: state["left"]]
            state["left"] -= len(part)
            if part:
                await counting_send({"type": "http.response.body", "body": part, "more_body": True})
            if state["left"] <= 0 or not message.get("more_body", False):
                await self._close(conn, raw_send, abort=False)
                raise ConnectionDroppedError

        return send

    async def _close(self, conn: Connection | None, send: Send, *, abort: bool) -> None:
        """Close the request's connection without (completing) an answer; wait until uvicorn sees it."""
        transport = (
            conn.transport
            if conn is not None
            else getattr(getattr(send, "__self__", None), "transport", None)
        )
        if transport is None:
            logger.error("cannot find the transport of a request; answering 500 instead of dropping")
            await _respond(send, 500, b"emulator could not drop the connection", b"text/plain")
            return
        if abort:
            transport.abort()
        else:
            transport.close()
        for _ in range(200):
            if not self.tracker.is_open(transport):
                break
            await asyncio.sleep(0.005 if _ else 0)


def _is_dropped(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionDroppedError):
        return True
    inner = getattr(exc, "exceptions", None)
    return bool(inner) and all(_is_dropped(e) for e in inner)  # type: ignore[union-attr]


def _delayed(send: Send, seconds: float) -> Send:
    async def delayed_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            await asyncio.sleep(seconds)
        await send(message)

    return delayed_send


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
