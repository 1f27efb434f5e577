"""Keep signed URLs' credentials out of logs, errors and XCom-bound messages."""

from __future__ import annotations

import logging
import re
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
    """Attach :class:`RedactQueryStrings` to the HTTP libraries' loggers (once)."""
    for name in _LOGGERS_THAT_PRINT_URLS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactQueryStrings) for existing in logger.filters):
            logger.addFilter(RedactQueryStrings())
