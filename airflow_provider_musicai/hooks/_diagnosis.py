"""``test_connection``'s diagnosis: one quick attempt, and a verdict that names the likely mistake.

``airflow connections test`` and the UI's Test button want an answer at once, so the test makes a
single attempt with short timeouts (a retry storm would only delay the verdict); when it fails, the
message says what is probably wrong in the connection (a base URL that is not the API's, a host
that cannot be reached).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_musicai.exceptions import MusicAIError, MusicAINotFoundError, MusicAITransportError
from airflow_provider_musicai.hooks._config import DEFAULT_BASE_URL, ConnectionConfig, RetryPolicy

#: Timeouts of ``test_connection`` (seconds): an answer is expected at once, or never.
TEST_CONNECT_TIMEOUT = 5.0
TEST_READ_TIMEOUT = 10.0


def for_a_test(config: ConnectionConfig) -> ConnectionConfig:
    """``config`` with no retries and timeouts no longer than the test's."""
    return dataclasses.replace(
        config,
        retry=RetryPolicy(max_retries=0),
        connect_timeout=min(config.connect_timeout, TEST_CONNECT_TIMEOUT),
        read_timeout=min(config.read_timeout, TEST_READ_TIMEOUT),
    )


def success_verdict(application: Mapping[str, Any]) -> str:
    """The message of a test that reached the API: which application the key belongs to."""
    return f"Connected to Music AI application {application['name']!r} ({application['id']})"


def failure_verdict(error: MusicAIError, config: ConnectionConfig | None) -> str:
    """The message of a failed test (``config``: None when the connection itself is unusable)."""
    if isinstance(error, MusicAINotFoundError) and config is not None:
        # Not about jobs or workflows here: the URL is not the API's.
        return _not_the_api(error, config)
    text, hint = str(error), _likely_mistake(error, config)
    return f"{text}{'' if not hint or text.endswith('.') else '.'}{hint}"


def _not_the_api(error: MusicAINotFoundError, config: ConnectionConfig) -> str:
    """``test_connection``'s message for a 404 on ``GET /application``: a wrong base URL."""
    scheme, host, port = config.api_origin
    path = urlsplit(config.base_url).path.rstrip("/")
    said = f" ({error.api_message})" if error.api_message else ""
    message = f"{config.base_url} answered HTTP 404{said} to GET /application: it is not the Music AI API."
    if not path.endswith("/v1"):
        return f"{message} The API's paths start with /v1: did you mean {scheme}://{host}:{port}{path}/v1?"
    return f"{message} Check the host field (empty means {DEFAULT_BASE_URL})."


def _likely_mistake(error: MusicAIError, config: ConnectionConfig | None) -> str:
    """A hint for ``test_connection`` at what is probably wrong in the connection, or ""."""
    if config is None:
        return ""
    _, host, port = config.api_origin
    if isinstance(error, MusicAITransportError):
        text = str(error)
        if "cannot connect" in text or "connect timeout" in text:
            return (
                f" Cannot connect to {host}:{port}: check the host, the port and that this machine "
                "can reach it."
            )
    return ""
