"""The settings a Music AI connection carries, parsed once and validated with clear errors."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import random
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from airflow_provider_musicai.exceptions import MusicAIConfigurationError
from airflow_provider_musicai.get_provider_info import CONN_FIELDS

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.music.ai/v1"


def _default(name: str) -> Any:
    """The default of extra ``name``: its row in ``CONN_FIELDS``, the one table of connection extras
    that the connection form, the docs and this parser all read."""
    return CONN_FIELDS[name]["schema"]["default"]


#: Defaults of the limits that keep a hostile or broken server from holding a call forever.
DEFAULT_TOTAL_TIMEOUT = float(_default("total_timeout"))
DEFAULT_MAX_RESPONSE_BYTES = int(_default("max_response_bytes"))
DEFAULT_MAX_PAGES = int(_default("max_pages"))


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in attempts and in total time.

    ``max_retries`` counts retries after the first attempt; ``max_retry_time`` bounds the time
    spent sleeping between attempts plus the time already elapsed when a retry is considered.
    """

    max_retries: int = int(_default("max_retries"))
    backoff: float = float(_default("retry_backoff"))
    max_wait: float = float(_default("retry_max_wait"))
    max_retry_time: float = float(_default("retry_max_time"))
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based); ``Retry-After`` wins if longer."""
        ceiling = min(self.max_wait, self.backoff * (2 ** (retry_number - 1)))
        jittered = self.rng.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            return max(jittered, min(retry_after, self.max_retry_time))
        return jittered

    def allows(self, retry_number: int, elapsed: float, delay: float) -> bool:
        """Whether retry ``retry_number`` may happen after ``delay`` more seconds."""
        return retry_number <= self.max_retries and elapsed + delay <= self.max_retry_time


@dataclass(frozen=True)
class TransferLimits:
    """Wall-clock bounds of one upload or download attempt (the read timeout bounds only each read).

    An attempt fails (and is retried within the retry policy) when it moved fewer than
    ``min_rate`` bytes/s on average over ``rate_window`` seconds, or ran longer than ``max_time``
    seconds. 0 turns a bound off.
    """

    min_rate: float = float(_default("transfer_min_rate"))
    rate_window: float = float(_default("transfer_rate_window"))
    max_time: float = float(_default("transfer_max_time"))


@dataclass(frozen=True)
class ConnectionConfig:
    """Everything the hook needs from an Airflow connection of type ``musicai``."""

    base_url: str
    api_key: str = field(repr=False)
    connect_timeout: float = float(_default("connect_timeout"))
    read_timeout: float = float(_default("timeout"))
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    async_pool_size: int = 10
    allow_plain_http: bool = False
    transfer: TransferLimits = field(default_factory=TransferLimits)
    job_url_template: str | None = None

    #: Wall-clock bound of one API request, answer body included (``timeout`` bounds each read).
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT
    #: Largest decoded API answer read; a bigger one (a gzip bomb) fails instead of filling memory.
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    #: Most pages one listing may take before it is declared endless.
    max_pages: int = DEFAULT_MAX_PAGES

    ca_bundle: str | None = None
    verify: bool = True

    def job_url(self, job_id: str) -> str | None:
        """The web page of ``job_id`` from the ``job_url_template`` extra; None when not set."""
        if self.job_url_template is None:
            return None
        return self.job_url_template.replace("{job_id}", quote(job_id, safe=""))

    @property
    def tls_verify(self) -> bool | str:
        """What both transports verify the server's certificate against: the CA bundle's path,
        True for the system's trust store, or False (no verification)."""
        return False if not self.verify else (self.ca_bundle or True)

    def ssl_context(self) -> ssl.SSLContext | bool:
        """The same verification as :attr:`tls_verify`, in the form httpx2 takes."""
        if not self.verify:
            return False
        return ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else True

    @property
    def api_origin(self) -> tuple[str, str, int]:
        """(scheme, host, port) of the API: the only origin the API key may be sent to."""
        return origin_of(self.base_url)

    def check_transport_security(self) -> None:
        """Refuse to send the API key in clear text: plain HTTP only to loopback, unless the
        connection's extra ``allow_plain_http`` declares the network to the host trusted."""
        scheme, host, _ = self.api_origin
        if scheme == "http" and not self.allow_plain_http and not is_loopback_host(host):
            raise MusicAIConfigurationError(
                'Use an https:// host, or set the connection extra "allow_plain_http": true if the '
                "network to it is trusted: refusing to send the Music AI API key over plain HTTP to "
                f"{host} (it would travel unencrypted)."
            )

    @classmethod
    def from_connection(
        cls,
        *,
        conn_id: str,
        host: str | None,
        password: str | None,
        port: int | None = None,
        schema: str | None = None,
        extra: str | Mapping[str, Any] | None = None,
    ) -> ConnectionConfig:
        """Build the config from an Airflow connection's fields, naming any unusable one."""
        api_key = _api_key(conn_id, password)
        extras = _parse_extra(conn_id, extra)
        base_url = _base_url(conn_id, host, port, schema, extras)
        retry = RetryPolicy(
            max_retries=_field(conn_id, extras, "max_retries", int),
            backoff=_field(conn_id, extras, "retry_backoff", float),
            max_wait=_field(conn_id, extras, "retry_max_wait", float),
            max_retry_time=_field(conn_id, extras, "retry_max_time", float),
        )
        return cls(
            base_url=base_url,
            api_key=api_key,
            connect_timeout=_field(conn_id, extras, "connect_timeout", float),
            read_timeout=_field(conn_id, extras, "timeout", float),
            retry=retry,
            async_pool_size=_number(conn_id, extras, "async_pool_size", 10, int, minimum=1),
            allow_plain_http=_flag(conn_id, extras, "allow_plain_http"),
            transfer=TransferLimits(
                min_rate=_field(conn_id, extras, "transfer_min_rate", float),
                rate_window=_field(conn_id, extras, "transfer_rate_window", float),
                max_time=_field(conn_id, extras, "transfer_max_time", float),
            ),
            job_url_template=_job_url_template(conn_id, extras),
            total_timeout=_field(conn_id, extras, "total_timeout", float),
            max_response_bytes=_field(conn_id, extras, "max_response_bytes", int),
            max_pages=_field(conn_id, extras, "max_pages", int),
            ca_bundle=_ca_bundle(conn_id, extras),
            verify=_verify(conn_id, extras),
        )


def origin_of(url: str) -> tuple[str, str, int]:
    """The (scheme, host, port) triple that decides whether two URLs are the same origin."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def is_loopback_host(host: str) -> bool:
    """True for localhost names and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in {"localhost", "localhost.localdomain"} or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _api_key(conn_id: str, password: str | None) -> str:
    """The key as it will be sent, or an error naming what is wrong with it, never showing it.

    An HTTP header value must be printable ASCII: requests and httpx2 disagree on the rest (a
    Latin-1 letter passes one and not the other, CR/LF fail only after the key reached a DEBUG
    log), so both transports get the same local verdict before anything is sent.
    """
    key = (password or "").strip()
    if not key:
        what = "an API key made only of whitespace" if password else "no API key"
        raise MusicAIConfigurationError(
            f"Connection {conn_id!r} has {what}: put the Music AI API key in its password field"
        )
    for index, char in enumerate(key):
        problem = _key_char_problem(char)
        if problem:
            raise MusicAIConfigurationError(
                f"Connection {conn_id!r}: the API key in the password field contains {problem} (at "
                f"position {index + 1} of {len(key)}); an API key is printable ASCII without "
                "spaces. Paste it again from the Music AI dashboard. Nothing was sent."
            )
    return key


def _key_char_problem(char: str) -> str | None:
    """What makes ``char`` unusable in an API key (an HTTP header value), if anything."""
    if char in "\r\n":
        return "a line break (CR/LF)"
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return "a control character"
    if char.isspace():
        return "whitespace"
    if ord(char) > 0x7E:
        return "a non-ASCII character"
    return None


def _ca_bundle(conn_id: str, extras: Mapping[str, Any]) -> str | None:
    """The ``ca_bundle`` extra: a readable PEM file of CAs, checked now rather than at connect."""
    raw = extras.get("ca_bundle")
    if raw is None or raw == "":
        return None
    path = os.path.expanduser(str(raw).strip())
    if not os.path.isfile(path):
        raise MusicAIConfigurationError(
            f"Connection {conn_id!r}: extra 'ca_bundle' must be the path of a PEM file of CA "
            f"certificates; {path!r} is not a file on this machine"
        )
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise MusicAIConfigurationError(
            f"Connection {conn_id!r}: extra 'ca_bundle' file {path!r} holds no usable PEM "
            f"certificate ({type(exc).__name__})"
        ) from None
    return path


def _verify(conn_id: str, extras: Mapping[str, Any]) -> bool:
    """The ``verify`` extra (default true); turning verification off is logged every time."""
    if extras.get("verify") is None or extras.get("verify") == "":
        return True
    verify = _flag(conn_id, extras, "verify")
    if not verify and extras.get("ca_bundle"):
        raise MusicAIConfigurationError(
            f"Connection {conn_id!r}: extras 'verify': false and 'ca_bundle' contradict each other; "
            "keep 'ca_bundle' to trust a private CA"
        )
    if not verify:
        log.warning(
            "Connection %r: TLS certificate verification is OFF (extra 'verify': false); anyone on "
            "the network path can impersonate the API and read the API key. Prefer 'ca_bundle'.",
            conn_id,
        )
    return verify


def _parse_extra(conn_id: str, extra: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if not extra:
        return {}
    if isinstance(extra, Mapping):
        return dict(extra)
    try:
        parsed = json.loads(extra)
    except ValueError as exc:
        raise MusicAIConfigurationError(f"Connection {conn_id!r}: extra is not valid JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise MusicAIConfigurationError(f"Connection {conn_id!r}: extra must be a JSON object")
    return parsed


def _base_url(
    conn_id: str, host: str | None, port: int | None, schema: str | None, extras: Mapping[str, Any]
) -> str:
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if "://" in host:
        url = host
    else:
        scheme = str(extras.get("scheme") or "https")
        path = "/" + schema.strip("/") if schema else "/v1"
        url = f"{scheme}://{host}{f':{port}' if port else ''}{path}"
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise MusicAIConfigurationError(
            f"Connection {conn_id!r}: host must be an http(s) URL such as {DEFAULT_BASE_URL}, got a "
            f"{parts.scheme or 'scheme-less'} URL"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise MusicAIConfigurationError(
            f"Connection {conn_id!r}: host must not carry credentials, a query or a fragment"
        )
    if parts.port is None and port and "://" in host:
        url = url.replace(parts.netloc, f"{parts.netloc}:{port}", 1)
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        log.warning(
            "Connection %r uses plain HTTP to %s: the Music AI API key would travel unencrypted. "
            "Use https:// for any host other than loopback.",
            conn_id,
            parts.hostname,
        )
    return url.rstrip("/")


def _field(conn_id: str, extras: Mapping[str, Any], name: str, kind: type[int] | type[float]) -> Any:
    """Extra ``name`` parsed with the default and minimum of its row in ``CONN_FIELDS`` (the table the
    connection form shows), so the form and the parser cannot disagree."""
    schema = CONN_FIELDS[name]["schema"]
    return _number(conn_id, extras, name, kind(_default(name)), kind, minimum=kind(schema["minimum"]))


def _number(
    conn_id: str,
    extras: Mapping[str, Any],
    name: str,
    default: Any,
    kind: type[int] | type[float],
    *,
    minimum: float,
) -> Any:
    raw = extras.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise MusicAIConfigurationError(
            f"Connection {conn_id!r}: extra {name!r} must be a {kind.__name__}, got {raw!r}"
        ) from None
    if isinstance(raw, bool) or value < minimum:
        raise MusicAIConfigurationError(
            f"Connection {conn_id!r}: extra {name!r} must be a {kind.__name__} >= {minimum}, got {raw!r}"
        )
    return value


def _flag(conn_id: str, extras: Mapping[str, Any], name: str) -> bool:
    raw = extras.get(name)
    if raw is None or raw == "":
        return False
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in {"true", "false", "1", "0", "yes", "no"}:
        return raw.strip().lower() in {"true", "1", "yes"}
    raise MusicAIConfigurationError(
        f"Connection {conn_id!r}: extra {name!r} must be true or false, got {raw!r}"
    )


def _job_url_template(conn_id: str, extras: Mapping[str, Any]) -> str | None:
    """The ``job_url_template`` extra: an http(s) URL containing ``{job_id}``, or None (no link).

    Music AI documents no public page per job, so there is no default.
    """
    raw = extras.get("job_url_template")
    if raw is None or raw == "":
        return None
    parts = urlsplit(raw) if isinstance(raw, str) else None
    if parts is None or "{job_id}" not in raw or parts.scheme not in {"http", "https"} or not parts.netloc:
        raise MusicAIConfigurationError(
            f"Connection {conn_id!r}: extra 'job_url_template' must be an http(s) URL containing "
            f"{{job_id}}, e.g. https://example.com/jobs/{{job_id}}; got {raw!r:.100}"
        )
    return str(raw)
