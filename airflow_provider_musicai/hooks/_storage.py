"""Transfers to and from signed storage URLs (uploads, results).

These URLs are third-party storage/CDN hosts, not the API: requests go through a session of
their own that never carries the API key, and only their path ever reaches a log or an error.
Failed transfers start again from the first byte, within the connection's retry policy.
"""

from __future__ import annotations

import html
import logging
import re
import time
from collections.abc import Callable
from typing import IO, Any, TypeVar

import requests
import urllib3

from airflow_provider_musicai.exceptions import MusicAIAPIError, MusicAIError, MusicAITransportError
from airflow_provider_musicai.hooks._api import api_message_of
from airflow_provider_musicai.hooks._calls import parse_retry_after
from airflow_provider_musicai.hooks._config import ConnectionConfig
from airflow_provider_musicai.hooks._sources import UploadSource
from airflow_provider_musicai.hooks._transfer import (
    PROGRESS_EVERY_SECONDS,
    CorruptBody,
    Gunzip,
    ProgressReader,
    RateGuard,
    TransferTooSlow,
    log_progress,
)
from airflow_provider_musicai.redaction import redact_url

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Blocks read from a download response. 1 MiB blocks (the upload size) are allocated fresh by urllib3
#: for every block (page faults, kernel zeroing): a 1 GiB result took 0.6-2.0 s and swung with
#: the machine's load; 256 KiB blocks are reused by the allocator and took 0.45-0.8 s (curl: 1.0 s).
DOWNLOAD_CHUNK_SIZE = 256 << 10


class _RetryableTransfer(Exception):
    def __init__(
        self, error: MusicAIError, retry_after: float | None = None, *, expired: bool = False
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
        self.expired = expired


_XML_FIELD = {
    name: re.compile(rf"<{name}>(.*?)</{name}>".encode(), re.DOTALL)
    for name in ("Code", "Message", "Details")
}
_SIGNATURE_VALUE = re.compile(r"(?i)(signature\w*[=:]\s*)[^\s&<\"']+")


def _xml_field(body: bytes, name: str) -> str | None:
    found = _XML_FIELD[name].search(body)
    return html.unescape(found.group(1).decode("utf-8", "replace")).strip() or None if found else None


def storage_message(body: bytes) -> str | None:
    """The message of a storage error: JSON, or an S3/GCS-style XML error as ``Code: Message
    Details`` (Cloud Storage puts the useful words in ``<Details>``: its ``<Message>`` for an
    expired URL is only "Invalid argument."), signature values blanked out, shortened; None if
    there is none."""
    message = api_message_of(body)
    if message is None:
        code, text, details = (_xml_field(body, name) for name in ("Code", "Message", "Details"))
        words = " ".join(part for part in (text, details) if part)
        message = f"{code}: {words}" if code and words else code or words
    if not message:
        return None
    message = _SIGNATURE_VALUE.sub(r"\1<redacted>", message)
    return message if len(message) <= 300 else message[:297] + "..."


_XML_CODE = re.compile(rb"<Code>\s*([A-Za-z]+)\s*</Code>")
#: Cloud Storage answers an expired V4 signed URL with 400 ExpiredToken (and a bad expiry with 400
#: MalformedSecurityHeader), not 403: both mean "this signed URL is spent", like a 403.
_EXPIRED_CODES = frozenset({b"ExpiredToken", b"MalformedSecurityHeader"})


def is_expired_url(status: int, body: bytes) -> bool:
    """Whether a storage answer says the signed URL expired or was refused (a fresh one may work)."""
    if status == 403:
        return True
    found = _XML_CODE.search(body) if status == 400 else None
    return found is not None and found.group(1) in _EXPIRED_CODES


def _check(response: requests.Response, what: str, *, refreshable: bool) -> None:
    """Raise for a storage error answer; a retryable one (408, 429, 5xx; an expired signed URL
    only when a fresh one will be used) is marked so."""
    if response.status_code < 400:
        return
    body = response.content[:4096]
    expired = is_expired_url(response.status_code, body)
    hint = ""
    if expired:
        hint = (
            "Signed URLs expire: a fresh one is requested before trying again."
            if refreshable
            else "Signed URLs expire: this one cannot be used again; read the job again for a fresh one."
        )
    error = MusicAIAPIError(
        hint, status_code=response.status_code, endpoint=what, api_message=storage_message(body)
    )
    if (expired and refreshable) or response.status_code in {408, 429} or response.status_code >= 500:
        raise _RetryableTransfer(
            error, parse_retry_after(response.headers.get("retry-after")), expired=expired
        )
    raise error


def _not_a_whole_file(response: requests.Response, what: str) -> MusicAIAPIError:
    """The error for a download answer that is not an error yet not a complete object either."""
    status = response.status_code
    if 300 <= status < 400:
        detail = (
            "a redirect without a Location header"
            if "location" not in response.headers
            else "a redirect that was not followed"
        )
    elif status == 206:
        detail = "a partial body (206) that was not asked for"
    else:
        detail = f"HTTP {status}, not a complete object (200)"
    return MusicAIAPIError(
        f"The storage answered {detail}; nothing was saved.", status_code=status, endpoint=what
    )


def _gunzip_for(response: requests.Response, what: str) -> Gunzip | None:
    """Our own checked decoder for a plain gzip body, None to let urllib3 decode (or not) the rest.

    A body in a ``Content-Encoding`` that cannot be decoded here is refused: saved as it is, it
    would be a compressed blob under the result's name, not the result.
    """
    declared = response.headers.get("content-encoding", "")
    codings = [coding.strip().lower() for coding in declared.split(",") if coding.strip()]
    codings = [coding for coding in codings if coding != "identity"]
    if codings in (["gzip"], ["x-gzip"]):
        return Gunzip()
    decodable = set(urllib3.HTTPResponse.CONTENT_DECODERS)
    unknown = [coding for coding in codings if coding not in decodable]
    if unknown:
        raise MusicAIAPIError(
            f"The storage sent the result in Content-Encoding {', '.join(unknown)!r}, which cannot be "
            "decoded here; nothing was saved.",
            status_code=response.status_code,
            endpoint=what,
        )
    return None


class StorageClient:
    """Streams bodies to and from signed URLs in bounded memory."""

    def __init__(self, config: ConnectionConfig, session: requests.Session) -> None:
        self.config = config
        self.session = session

    def close(self) -> None:
        self.session.close()

    def _retrying(self, action: Callable[[], T], what: str) -> T:
        """Run ``action`` (one whole transfer) until it completes, fails for good, or the connection's
        retry policy (the one API calls follow) allows no more attempts.

        Each attempt starts again from the first byte (a signed URL offers no resumption).
        """
        policy = self.config.retry
        started = time.monotonic()
        retries = 0
        while True:
            try:
                return action()
            except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                failure = _RetryableTransfer(
                    MusicAITransportError(f"{what} failed: {type(exc).__name__}", endpoint=what)
                )
            except TransferTooSlow as exc:
                failure = _RetryableTransfer(MusicAITransportError(str(exc), endpoint=what))
            except CorruptBody as exc:
                failure = _RetryableTransfer(MusicAITransportError(f"{what}: {exc}", endpoint=what))
            except _RetryableTransfer as retryable:
                failure = retryable
            retries += 1
            delay = policy.delay(retries, failure.retry_after)
            if not policy.allows(retries, time.monotonic() - started, delay):
                raise failure.error
            log.warning("%s: %s; starting again in %.1fs (retry %d)", what, failure.error, delay, retries)
            time.sleep(delay)

    def upload(
        self,
        source: UploadSource,
        content_type: str,
        new_urls: Callable[[], dict[str, str]],
        log_level: int = logging.INFO,
    ) -> str:
        """PUT ``source`` to a fresh signed URL (a new one for every attempt); return the downloadUrl
        (logged at ``log_level``)."""
        what = f"Upload of {source.label}"

        def attempt() -> str:
            urls = new_urls()
            shown = f"PUT {redact_url(urls['uploadUrl'])}"
            started = time.monotonic()
            with source.open() as handle:
                reader = ProgressReader(
                    handle, source.size, source.label, RateGuard(self.config.transfer, shown)
                )
                response = self.session.put(
                    urls["uploadUrl"],
                    data=reader,
                    headers={"Content-Type": content_type},
                    timeout=(self.config.connect_timeout, self.config.read_timeout),
                    allow_redirects=False,
                )
            _check(response, shown, refreshable=True)
            if not 200 <= response.status_code < 300:  # a redirect stored nothing; never followed
                raise MusicAIAPIError(
                    "Only a 2xx answer means the file was stored; a redirect is not followed with a "
                    "signed URL.",
                    status_code=response.status_code,
                    endpoint=shown,
                )
            elapsed = max(time.monotonic() - started, 1e-9)
            log.log(
                log_level,
                "Uploaded %s (%.1f MB, %s) in %.1fs at %.1f MB/s",
                source.label,
                source.size / 1e6,
                content_type,
                elapsed,
                source.size / elapsed / 1e6,
            )
            return urls["downloadUrl"]

        return self._retrying(attempt, what)

    def download(
        self, url: str, handle: IO[bytes], *, label: str, fresh_url: Callable[[], str] | None = None
    ) -> int:
        """GET ``url`` into ``handle`` (rewound on every retry); return the byte count written.

        Only a complete 200 body is a result. An expired signed URL (403, or Cloud Storage's 400
        ``ExpiredToken``/``MalformedSecurityHeader``) cannot work again, so it is retried only with
        ``fresh_url()``, when given, and fails at once otherwise. A ``Content-Encoding: gzip``
        body is saved decoded; its ``Content-Length`` is checked against the encoded bytes received.
        """
        shown = redact_url(url)
        what = f"GET {shown}"
        current: dict[str, Any] = {"url": url, "refused": None}

        def attempt() -> int:
            refused = current["refused"]
            if refused is not None and fresh_url is not None:
                fresh = fresh_url()
                if fresh == current["url"]:  # the API hands out the same URL: it will not heal
                    raise MusicAIAPIError(
                        "Reading the job again gave the same URL: the result is no longer available.",
                        status_code=refused.status_code,
                        endpoint=refused.endpoint,
                        api_message=refused.api_message,
                    )
                current["url"], current["refused"] = fresh, None
            handle.seek(0)
            handle.truncate()
            started = time.monotonic()
            with self.session.get(
                current["url"], stream=True, timeout=(self.config.connect_timeout, self.config.read_timeout)
            ) as response:
                try:
                    _check(response, what, refreshable=fresh_url is not None)
                except _RetryableTransfer as retryable:
                    if retryable.expired:
                        current["refused"] = retryable.error
                    raise
                if response.status_code != 200:
                    raise _not_a_whole_file(response, what)
                gunzip = _gunzip_for(response, what)
                expected = response.headers.get("content-length")
                total = int(expected) if expected and expected.isdigit() else None
                guard = RateGuard(self.config.transfer, what)
                raw = response.raw
                written = 0
                next_report = started + PROGRESS_EVERY_SECONDS
                while True:
                    # read1: whatever has arrived (one socket read), so the rate guard sees a trickle.
                    chunk = raw.read1(DOWNLOAD_CHUNK_SIZE, decode_content=gunzip is None)
                    if not chunk:  # read1 returns b"" only at the end of the body
                        break
                    for piece in (chunk,) if gunzip is None else gunzip.feed(chunk):
                        handle.write(piece)
                        written += len(piece)
                    guard.advance(raw.tell() - guard.total)  # bytes on the wire (encoded)
                    if time.monotonic() >= next_report:
                        next_report = time.monotonic() + PROGRESS_EVERY_SECONDS
                        log_progress("Downloading", label, guard.total, total, time.monotonic() - started)
                received = raw.tell()
                if gunzip is not None:
                    gunzip.finish()
            if total is not None and total != received:
                raise _RetryableTransfer(
                    MusicAITransportError(f"{what} ended after {received} of {total} bytes", endpoint=what)
                )
            return written

        return self._retrying(attempt, f"Download of {label} from {shown}")
