"""The two ways bytes reach the API: a pooled ``requests.Session`` and a shared httpx2 client.

Both only turn an :class:`ApiRequest` into an :class:`Outcome`; what the answer means is decided
in ``_api`` and ``_calls``. The API key is added here, per request, to API URLs only: neither
session carries it as a default header, so nothing else (signed storage URLs) can receive it.

Both read the answer incrementally, so that ``max_response_bytes`` bounds memory (a gzip bomb
fails instead of inflating), and within ``total_timeout`` (``timeout`` bounds each read only: an
answer trickled a byte at a time would otherwise hold the call forever). Only GET follows
redirects (both libraries drop the key off-origin); a redirected POST or DELETE is an error.
"""

from __future__ import annotations

import asyncio
import http.client
import ssl
import time
import weakref
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3 import exceptions as urllib3_exceptions
from urllib3.exceptions import NameResolutionError, NewConnectionError

from airflow_provider_musicai import __version__
from airflow_provider_musicai.hooks._api import ApiRequest
from airflow_provider_musicai.hooks._calls import (
    HttpAnswer,
    Outcome,
    Refused,
    TransportFailure,
    parse_retry_after,
)
from airflow_provider_musicai.hooks._config import ConnectionConfig
from airflow_provider_musicai.redaction import (
    install_log_redaction,
    own_http_requests,
    scrub_body,
    scrub_text,
)

if TYPE_CHECKING:
    import httpx2

USER_AGENT = f"airflow-provider-musicai/{__version__}"


def api_headers(config: ConnectionConfig) -> dict[str, str]:
    """Headers of an API call: the raw key (no ``Bearer``), as the reference requires."""
    return {"Authorization": config.api_key, "Accept": "application/json", "User-Agent": USER_AGENT}


def _answer(status: int, body: bytes, headers: Any, secret: str) -> HttpAnswer:
    """The answer as the rest of the provider sees it: any echo of the API key already scrubbed."""
    content_type = headers.get("content-type")
    return HttpAnswer(
        status=status,
        body=scrub_body(body, secret),
        content_type=None if content_type is None else scrub_text(content_type, secret),
        retry_after=parse_retry_after(headers.get("retry-after")),
    )


#: Decoded bytes read at a time: with a bounded read, decompression output stays this small too.
READ_CHUNK = 64 * 1024


class _TooLarge(Exception):
    pass


class _Overdue(Exception):
    pass


class _Body:
    """Collects an answer's decoded body, enforcing the size cap and the wall-clock deadline."""

    def __init__(self, config: ConnectionConfig, started: float) -> None:
        self.limit = config.max_response_bytes
        self.deadline = started + config.total_timeout
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limit:
            raise _TooLarge
        self.check_deadline()

    def check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise _Overdue


def _overdue(config: ConnectionConfig) -> TransportFailure:
    return TransportFailure(
        f"no complete answer within total_timeout={config.total_timeout}s", maybe_sent=True
    )


def _tls_failure(exc: BaseException, config: ConnectionConfig) -> TransportFailure | None:
    """A failure that retrying cannot fix, named for what it is, if ``exc`` is a TLS problem."""
    _, host, port = config.api_origin
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            why = (cause.verify_message or "untrusted certificate").rstrip(".")
            return TransportFailure(
                'If the server uses a private CA, set the connection extra "ca_bundle" to a PEM file '
                f"of that CA: TLS certificate verification failed for {host}:{port} ({why})",
                maybe_sent=False,
                permanent=True,
            )
        if isinstance(cause, ssl.SSLError) and cause.reason in _NOT_TLS_REASONS:
            return TransportFailure(
                f"TLS handshake with {host}:{port} failed ({cause.reason}): the server does not "
                "speak HTTPS there (did you mean http://?)",
                maybe_sent=False,
                permanent=True,
            )
    return None


#: OpenSSL's reasons when an https:// request reaches a plain-HTTP server.
_NOT_TLS_REASONS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"})


def _chain(exc: BaseException, *, causes: bool = True) -> list[BaseException]:
    """``exc`` and what it wraps, each once, nearest first (breadth first, 16 at most): its ``reason``
    (urllib3), the exceptions among its arguments (requests), and with ``causes`` its ``__cause__``
    and ``__context__`` (how httpx2 and httpcore wrap theirs). The one walk of an exception's causes."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending and len(seen) < 16:
        current = pending.pop(0)
        if any(current is known for known in seen):
            continue
        seen.append(current)
        reason = getattr(current, "reason", None)
        nested = [reason] if isinstance(reason, BaseException) else []
        nested += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
        if causes:
            nested += [link for link in (current.__cause__, current.__context__) if link is not None]
        pending.extend(nested)
    return seen


def _describe(exc: BaseException) -> str:
    """A short cause for logs: the exception type, never its text (which can contain URLs)."""
    return type(exc).__name__


class SyncTransport:
    """Blocking transport over one keep-alive ``requests.Session``."""

    def __init__(self, config: ConnectionConfig, session: requests.Session) -> None:
        self.config = config
        self.session = session

    def send(self, request: ApiRequest[Any]) -> Outcome:
        config = self.config
        body = _Body(config, time.monotonic())
        try:
            response = self.session.request(
                request.endpoint.method,
                config.base_url + request.path,
                params=list(request.params),
                json=request.json_body,
                headers=api_headers(config),
                timeout=(config.connect_timeout, min(config.read_timeout, config.total_timeout)),
                allow_redirects=request.endpoint.method == "GET",
                stream=True,
            )
            try:
                while chunk := response.raw.read1(READ_CHUNK, decode_content=True):
                    body.add(chunk)
                body.check_deadline()
                # Read to its end: mark it consumed so that close() keeps the connection pooled.
                response._content = bytes(body.data)
                response._content_consumed = True  # type: ignore[attr-defined]
            finally:
                response.close()
        except _TooLarge:
            return Refused(response.status_code, config.max_response_bytes)
        except _Overdue:
            return _overdue(config)
        except requests.exceptions.ConnectTimeout as exc:
            return TransportFailure(f"connect timeout ({_describe(exc)})", maybe_sent=False)
        except (requests.exceptions.ReadTimeout, urllib3_exceptions.ReadTimeoutError) as exc:
            return TransportFailure(f"read timeout after {self.config.read_timeout}s", maybe_sent=_sent(exc))
        except (requests.exceptions.RequestException, urllib3_exceptions.HTTPError) as exc:
            tls = _tls_failure(exc, self.config)
            if tls is not None:
                return tls
            sent = _sent(exc)
            what = "connection lost" if sent else "cannot connect"
            return TransportFailure(f"{what} ({_cause_name(exc)})", maybe_sent=sent)
        except (UnicodeError, http.client.HTTPException) as exc:
            # An answer requests cannot even parse (e.g. a redirect whose Location is not UTF-8).
            return TransportFailure(f"unreadable answer ({type(exc).__name__})", maybe_sent=True)
        return _answer(response.status_code, bytes(body.data), response.headers, self.config.api_key)


def _sent(exc: BaseException) -> bool:
    """False only when the connection was never established (refused, DNS, connect timeout)."""
    return not any(isinstance(cause, (NewConnectionError, NameResolutionError)) for cause in _chain(exc))


def _cause_name(exc: BaseException) -> str:
    """The type of the innermost exception ``exc`` wraps as requests and urllib3 do (its text is
    never used: it can hold a URL)."""
    return type(_chain(exc, causes=False)[-1]).__name__


class LargeBlockAdapter(HTTPAdapter):
    """An adapter that sends request bodies in 1 MiB blocks instead of urllib3's 16 KiB.

    It also verifies certificates as the connection's ``ca_bundle``/``verify`` extras say, even
    where the environment sets ``REQUESTS_CA_BUNDLE`` (which requests lets override a session's
    ``verify``).
    """

    def __init__(self, blocksize: int = 1 << 20, tls_verify: bool | str = True, **kwargs: Any) -> None:
        self._blocksize = blocksize
        self._tls_verify = tls_verify
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["blocksize"] = self._blocksize
        super().init_poolmanager(*args, **kwargs)

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # requests passes everything by keyword. Left alone when the connection sets nothing, so
        # REQUESTS_CA_BUNDLE keeps working for those who rely on it.
        if self._tls_verify is not True and not args:
            kwargs["verify"] = self._tls_verify
        return super().send(request, *args, **kwargs)


def new_session(pool_size: int = 10, tls_verify: bool | str = True) -> requests.Session:
    """A keep-alive session with no default credentials, verifying TLS against ``tls_verify``
    (a CA bundle's path, True for the system's trust store, False for no verification)."""
    session = requests.Session()
    session.verify = tls_verify
    adapter = LargeBlockAdapter(pool_connections=pool_size, pool_maxsize=pool_size, tls_verify=tls_verify)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


#: Seconds an idle pooled async connection is kept. httpx's default (5 s) is shorter than a
#: trigger's poll interval (10 s by default), so every poll cycle would reconnect the whole pool.
#: A connection that the server closed meanwhile is noticed and replaced before reuse.
ASYNC_KEEPALIVE_SECONDS = 120.0

# One httpx2 client per (event loop, API base URL, pool size, TLS settings): every trigger of a
# triggerer process that talks to the same API the same way shares its connection pool.
_ASYNC_CLIENTS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, int, bool | str], httpx2.AsyncClient]
]
_ASYNC_CLIENTS = weakref.WeakKeyDictionary()

K = TypeVar("K")
V = TypeVar("V")


def of_running_loop(registry: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[K, V]]) -> dict[K, V]:
    """The running loop's entry of a per-loop ``registry``, after dropping closed loops' entries.

    A weak key alone does not free a loop: its values (a client whose pooled connections hold the
    loop's transports, a poller whose task holds the loop) refer to it, so the entry kept the loop,
    the client and its SSL context (~0.8 MiB of native memory with the certifi bundle) alive for
    good. A process that runs a loop per trigger (``dag.test()``, ``asyncio.run`` per call) grew by
    that much per trigger. Dropping the entry of a closed loop lets the garbage collector take it.
    """
    for loop in [loop for loop in registry if loop.is_closed()]:
        registry.pop(loop, None)
    return registry.setdefault(asyncio.get_running_loop(), {})


def shared_async_client(config: ConnectionConfig) -> httpx2.AsyncClient:
    """The pooled async client of the running loop for this API, created on first use."""
    import httpx2 as httpx  # deferred: DAG files import the hook, only triggers need httpx2

    clients = of_running_loop(_ASYNC_CLIENTS)
    key = (config.base_url, config.async_pool_size, config.tls_verify)
    client = clients.get(key)
    if client is None or client.is_closed:
        install_log_redaction()  # also what logs its requests' lines at DEBUG (done once)
        client = httpx.AsyncClient(
            verify=config.ssl_context(),
            follow_redirects=True,
            limits=httpx.Limits(
                max_connections=config.async_pool_size,
                max_keepalive_connections=config.async_pool_size,
                keepalive_expiry=ASYNC_KEEPALIVE_SECONDS,
            ),
            headers={"User-Agent": USER_AGENT},
        )
        clients[key] = client
    return client


async def close_shared_async_clients() -> None:
    """Close the running loop's pooled clients (tests, triggerer shutdown)."""
    clients = _ASYNC_CLIENTS.pop(asyncio.get_running_loop(), {})
    for client in clients.values():
        await client.aclose()


class AsyncTransport:
    """Asyncio transport over the loop's shared httpx2 client."""

    def __init__(self, config: ConnectionConfig) -> None:
        self.config = config

    async def send(self, request: ApiRequest[Any]) -> Outcome:
        import httpx2 as httpx

        config = self.config
        client = shared_async_client(config)
        read_timeout = min(config.read_timeout, config.total_timeout)
        timeout = httpx.Timeout(read_timeout, connect=config.connect_timeout)
        body = _Body(config, time.monotonic())
        status = 0

        async def exchange() -> Any:
            nonlocal status
            async with client.stream(
                request.endpoint.method,
                config.base_url + request.path,
                params=list(request.params),
                json=request.json_body,
                headers=api_headers(config),
                timeout=timeout,
                follow_redirects=request.endpoint.method == "GET",
            ) as response:
                status = response.status_code
                async for chunk in response.aiter_bytes(READ_CHUNK):
                    body.add(chunk)
                return response.headers

        try:
            with own_http_requests():  # httpx2's INFO line per request: DEBUG for ours only
                headers = await asyncio.wait_for(exchange(), config.total_timeout)
        except _TooLarge:
            return Refused(status, config.max_response_bytes)
        except (TimeoutError, _Overdue):
            return _overdue(config)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            tls = _tls_failure(exc, self.config)
            if tls is not None:
                return tls
            return TransportFailure(f"cannot connect ({_describe(exc)})", maybe_sent=False)
        except httpx.TimeoutException as exc:
            return TransportFailure(f"read timeout ({_describe(exc)})", maybe_sent=True)
        except httpx.TransportError as exc:
            return TransportFailure(f"connection lost ({_describe(exc)})", maybe_sent=True)
        except (httpx.RequestError, httpx.InvalidURL, UnicodeError) as exc:  # an answer httpx cannot read
            return TransportFailure(f"unreadable answer ({_describe(exc)})", maybe_sent=True)
        return _answer(status, bytes(body.data), headers, self.config.api_key)
