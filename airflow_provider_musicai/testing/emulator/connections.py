"""TCP connection tracking: uvicorn protocol subclasses that count connections and expose transports.

The fault middleware needs the transport of a request's connection to drop it. uvicorn does not put the
transport in the ASGI scope, so each listener uses a subclass of uvicorn's HTTP protocol (httptools or h11)
whose ``connection_made``/``connection_lost`` register the transport under the connection's
``(client, server)`` addresses, which are exactly the scope's ``client`` and ``server``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.utils import get_local_addr, get_remote_addr

from .counters import Counters

Address = tuple[Any, ...] | None


@dataclass
class Connection:
    """One open TCP connection."""

    transport: asyncio.Transport
    used: bool = False


class ConnectionTracker:
    """Open connections of one listener, with counters."""

    def __init__(self, listener: str, counters: Counters) -> None:
        self.listener = listener
        self._counters = counters
        self._open: dict[tuple[Address, Address], Connection] = {}
        self._keys: dict[asyncio.Transport, tuple[Address, Address]] = {}

    def added(self, transport: asyncio.Transport) -> None:
        """Register a new connection (its addresses are read now: a closing socket may lose them)."""
        key = (get_remote_addr(transport), get_local_addr(transport))
        self._open[key] = Connection(transport)
        self._keys[transport] = key
        self._counters.connection_made(self.listener)

    def removed(self, transport: asyncio.Transport) -> None:
        """Forget a closed connection."""
        key = self._keys.pop(transport, None)
        if key is None:
            return
        conn = self._open.get(key)
        if conn is not None and conn.transport is transport:
            del self._open[key]
        self._counters.connection_lost(self.listener)

    def lookup(self, scope: Mapping[str, Any]) -> Connection | None:
        """The connection carrying the request of ``scope``."""
        client, server = scope.get("client"), scope.get("server")
        return self._open.get((tuple(client) if client else None, tuple(server) if server else None))

    def is_open(self, transport: asyncio.Transport) -> bool:
        """Whether ``transport`` is still registered (its ``connection_lost`` has not run)."""
        return transport in self._keys

    def mark_used(self, conn: Connection) -> None:
        """Count ``conn`` as opened by a client on its first public request."""
        if not conn.used:
            conn.used = True
            self._counters.connection_used(self.listener)


def protocol_class(http: str, tracker: ConnectionTracker, write_buffer_high: int) -> type[asyncio.Protocol]:
    """A uvicorn HTTP protocol class (``http``: auto, httptools or h11) reporting to ``tracker``."""
    base: type[Any]
    if http in ("auto", "httptools"):
        try:
            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
        except ImportError:
            if http == "httptools":
                raise
            from uvicorn.protocols.http.h11_impl import H11Protocol as base
    elif http == "h11":
        from uvicorn.protocols.http.h11_impl import H11Protocol as base
    else:
        raise ValueError(f"unknown http implementation {http!r}")

    class TrackedProtocol(base):  # type: ignore[misc]
        def connection_made(self, transport: asyncio.Transport) -> None:
            transport.set_write_buffer_limits(high=write_buffer_high)
            super().connection_made(transport)
            tracker.added(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            tracker.removed(self.transport)
            super().connection_lost(exc)

    TrackedProtocol.__name__ = f"Tracked{base.__name__}"
    return TrackedProtocol
