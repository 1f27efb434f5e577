"""What keeps secrets and forged lines out of logs, errors and XCom.

* signed URLs' query strings and the API key redacted (:func:`redact_url`, :func:`scrub_body`,
  :func:`scrub_text`, and the :class:`RedactQueryStrings` log filter on the HTTP libraries' loggers);
* server text made printable (:func:`printable`), so it cannot forge a log line;
* httpx2's per-request INFO line demoted to DEBUG for the provider's own requests
  (:class:`DemoteOwnRequestLines`), installed together with the redacting filter.

It imports neither requests nor httpx2, so DAG files that import the operators stay cheap to parse.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
