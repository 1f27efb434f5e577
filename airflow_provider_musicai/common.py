"""What every layer shares (hook, operators, sensor, triggers, references), in one import-cheap module.

* the default connection id and the provider's ``[musicai]`` configuration defaults;
* redaction: signed URLs' query strings and the API key kept out of logs, errors and XCom, and
  server text made printable;
* quiet HTTP logs: httpx2's per-request INFO line demoted to DEBUG for the provider's own requests;
* UTC timestamps for log lines, and the clock-skew allowance a server's timestamps are checked with;
* :class:`StatusLog`, the one way a job's status changes are logged.

It imports neither requests nor httpx2, so DAG files that import the operators stay cheap to parse.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

#: The connection id every hook, operator, sensor and trigger uses unless told otherwise.
DEFAULT_CONN_ID = "musicai_default"

#: ``[musicai] poller_log_interval``: seconds between a triggerer's shared-poller summary lines.
DEFAULT_POLLER_LOG_INTERVAL = 300.0

#: Seconds a catalog trigger holds its event after it started: Airflow 3's fire-right-after-deferral
#: race (apache/airflow#67287, #72716; see :mod:`airflow_provider_musicai.triggers.catalog`).
DEFAULT_DEFERRAL_HOLD = 5.0

_QUERY = re.compile(r"\?[^\s\"']*")


def redact_url(url: str) -> str:
    """Return ``url`` without its query string, fragment or user info.

    Signed storage URLs carry their credential in the query string; the path alone is enough
    to tell a user which object was meant.
    """
    try:
        parts = urlsplit(url)
        port = parts.port  # parsed lazily: raises for a port that is not a number
    except ValueError:
        return "<unparseable URL>"
    host = parts.hostname or ""
    if port is not None:
        host = f"{host}:{port}"
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


class RedactQueryStrings(logging.Filter):
    """Drops query strings from the records of HTTP libraries that log request lines.

    urllib3 logs every request's path and query at DEBUG level; for a signed URL that is its
    credential. Installed on those libraries' loggers by :func:`install_log_redaction`.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_without_query(arg) for arg in record.args)
        if isinstance(record.msg, str) and "?" in record.msg and not record.args:
            record.msg = _QUERY.sub("?<redacted>", record.msg)
        return True


def _without_query(arg: object) -> object:
    """``arg`` (a string or a URL object such as httpx's) with any query string redacted."""
    if isinstance(arg, (int, float)) or arg is None:
        return arg
    text = arg if isinstance(arg, str) else str(arg)
    return _QUERY.sub("?<redacted>", text) if "?" in text else arg


_LOGGERS_THAT_PRINT_URLS = ("urllib3.connectionpool", "httpx2", "httpx", "httpcore2", "httpcore")


def install_log_redaction() -> None:
    """Attach :class:`RedactQueryStrings` to the HTTP libraries' loggers, and
    :class:`DemoteOwnRequestLines` to httpx2's (once each)."""
    for name in _LOGGERS_THAT_PRINT_URLS:
        _add_filter_once(logging.getLogger(name), RedactQueryStrings)
    _add_filter_once(logging.getLogger(_REQUEST_LINE_LOGGER), DemoteOwnRequestLines)


def _add_filter_once(logger: logging.Logger, kind: type[logging.Filter]) -> None:
    if not any(isinstance(existing, kind) for existing in logger.filters):
        logger.addFilter(kind())


#: The logger httpx2 writes its ``HTTP Request: GET ... "HTTP/1.1 200 OK"`` INFO line to.
_REQUEST_LINE_LOGGER = "httpx2"

#: True while the provider's own client sends a request (in that asyncio task or thread only).
_OWN_REQUEST: ContextVar[bool] = ContextVar("musicai_own_request", default=False)


@contextlib.contextmanager
def own_http_requests() -> Iterator[None]:
    """Mark the HTTP requests sent inside this block as the provider's (:class:`DemoteOwnRequestLines`)."""
    token = _OWN_REQUEST.set(True)
    try:
        yield
    finally:
        _OWN_REQUEST.reset(token)


class DemoteOwnRequestLines(logging.Filter):
    """Logs httpx2's per-request INFO line at DEBUG, for the provider's own requests only.

    httpx2 logs every request at INFO: a dozen lines in a short DAG's task logs, and one per
    listing page per poll in a triggerer's log. Raising the ``httpx2`` logger's level would also
    silence the user's own httpx2 clients in the same process, and event hooks cannot suppress
    the line; so the provider's client sends inside :func:`own_http_requests` (a context variable:
    per asyncio task and thread), and this filter, on the ``httpx2`` logger, demotes only the
    records made there. A demoted record is kept, as DEBUG, only if that logger is enabled for
    DEBUG, exactly as if httpx2 had logged it at DEBUG.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not _OWN_REQUEST.get():
            return True
        if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return True


#: What replaces the API key wherever a server echoed it back.
KEY_PLACEHOLDER = "<redacted API key>"


def scrub_body(body: bytes, secret: str) -> bytes:
    """``body`` (an HTTP answer as received) with every occurrence of ``secret`` replaced.

    This is where server text enters the provider: an error message, a FAILED job's error, a
    status or a name that echoes the API key would otherwise reach exception texts, log lines,
    trigger events (stored by Airflow outside the task-log masker's reach) and XCom. A JSON body
    is scrubbed value by value, so the key is found even JSON-escaped and the document stays
    well-formed (and unchanged unless it holds the key); any other body is scrubbed as bytes.
    """
    if not secret or not body:
        return body
    escaped = json.dumps(secret)[1:-1].encode()
    ascii_escaped = json.dumps(secret, ensure_ascii=False)[1:-1].encode()
    raw = secret.encode("utf-8", "surrogatepass")
    forms = {raw, escaped, ascii_escaped, escaped.replace(b"/", b"\\/"), b"\\u"}  # \\u: a char may be escaped
    if not any(form in body for form in forms):
        return body
    try:
        document = json.loads(body)
        scrubbed = _scrub_value(document, secret)
    except (ValueError, RecursionError):
        return body.replace(raw, KEY_PLACEHOLDER.encode())
    return body if scrubbed == document else json.dumps(scrubbed).encode()


def scrub_text(text: str, secret: str) -> str:
    """``text`` with ``secret`` replaced (headers and other server strings outside the body)."""
    return text.replace(secret, KEY_PLACEHOLDER) if secret and secret in text else text


def _scrub_value(value: Any, secret: str) -> Any:
    if isinstance(value, str):
        return scrub_text(value, secret)
    if isinstance(value, list):
        return [_scrub_value(item, secret) for item in value]
    if isinstance(value, dict):
        return {scrub_text(str(k), secret): _scrub_value(v, secret) for k, v in value.items()}
    return value


def printable(text: str) -> str:
    """``text`` with control and format characters escaped (``\\n``, ``\\x1b``, ``\\u202e``...).

    Server-provided text (a status, an error message) is put into log lines and messages with
    this, so a newline in it cannot forge a log line nor an escape sequence repaint a terminal.
    Backslashes are left alone, so escaping twice changes nothing.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() or char == " " else _escape(char) for char in text)


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


# -- timestamps and status logging ------------------------------------------------------------


#: Seconds a server's timestamp may lie ahead of this machine's clock and still be believed. Two
#: clocks kept by NTP differ by far less; a stamp further ahead is a server bug (a far-future
#: ``completedAt``), and must not move what decides which jobs fire, such as an event watcher's
#: watermark: every job finishing before that stamp would never fire.
CLOCK_SKEW_ALLOWANCE = 300.0


def ahead_of_clock(moment: datetime, now: datetime | None = None) -> bool:
    """Whether ``moment`` (a server's timestamp) lies beyond this machine's clock plus
    :data:`CLOCK_SKEW_ALLOWANCE`; a naive ``moment`` is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return moment > now + timedelta(seconds=CLOCK_SKEW_ALLOWANCE)


def utc_stamp(epoch: float | None = None) -> str:
    """``epoch`` (default: now) as an ISO 8601 UTC time to the second, e.g. ``2026-01-02T03:04:05Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if epoch is None else epoch))


class SupportsLog(Protocol):
    """The part of a logger used here: stdlib ``logging`` and Airflow 3's structlog loggers both fit."""

    def info(self, msg: str, /, *args: Any) -> Any: ...

    def warning(self, msg: str, /, *args: Any) -> Any: ...


class StatusLog:
    """Logs a job's status once per change, with the UTC time it was seen (and the seconds since
    ``started``, an epoch time, when given), and warns once about each status the provider does not
    know (it is treated as running). The hook's wait, the sensor and the trigger all log through it."""

    def __init__(self, job_id: str, logger: SupportsLog, *, started: float | None = None) -> None:
        self.job_id = job_id
        self.log = logger
        self.started = started
        self.last: str | None = None
        self._warned: set[str] = set()

    def observe(self, status: str) -> bool:
        """Record ``status``; True if it differs from the last one seen."""
        from airflow_provider_musicai.jobs import KNOWN_STATUSES

        changed = status != self.last
        if changed:
            now = time.time()
            if self.started is None:
                self.log.info("Music AI job %s is %s (at %s)", self.job_id, printable(status), utc_stamp(now))
            else:
                self.log.info(
                    "Music AI job %s is %s (at %s, %.1fs after the wait began)",
                    self.job_id,
                    printable(status),
                    utc_stamp(now),
                    now - self.started,
                )
            self.last = status
        if status not in KNOWN_STATUSES and status not in self._warned:
            self._warned.add(status)
            self.log.warning(
                "Music AI job %s has an unknown status %r; treating it as running", self.job_id, status
            )
        return changed
