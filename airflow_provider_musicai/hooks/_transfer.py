"""What watches a body while it streams to or from storage: progress lines (:class:`ProgressReader`,
:func:`log_progress`), the minimum-rate guard (:class:`RateGuard`) and gzip decoding with its
checks (:class:`Gunzip`). Nothing here holds a whole file in memory.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Iterator
from typing import IO

from airflow_provider_musicai.exceptions import MusicAIInputError
from airflow_provider_musicai.hooks._config import TransferLimits

log = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 5.0


class ProgressReader:
    """Reads a source for an HTTP body with a known length, logging percent and MB/s every few seconds.

    ``__len__`` lets requests send an exact ``Content-Length`` (no chunked encoding), and having no
    ``__iter__`` makes it stream the body with ``read`` in bounded blocks.
    """

    def __init__(self, handle: IO[bytes], size: int, label: str, guard: RateGuard | None = None) -> None:
        self._handle = handle
        self._size = size
        self._label = label
        self._guard = guard
        self.sent = 0
        self._started = time.monotonic()
        self._next_report = self._started + PROGRESS_EVERY_SECONDS

    def __len__(self) -> int:
        return self._size

    def read(self, amount: int = -1) -> bytes:
        remaining = self._size - self.sent
        if remaining <= 0:
            return b""
        chunk = self._handle.read(remaining if amount is None or amount < 0 else min(amount, remaining))
        if not chunk and remaining:
            raise MusicAIInputError(
                f"Upload source {self._label} ended after {self.sent} of {self._size} bytes (did it change "
                "while being uploaded?)"
            )
        self.sent += len(chunk)
        if self._guard is not None:
            self._guard.advance(len(chunk))
        now = time.monotonic()
        if now >= self._next_report:
            self._next_report = now + PROGRESS_EVERY_SECONDS
            log_progress("Uploading", self._label, self.sent, self._size, now - self._started)
        return chunk


class TransferTooSlow(Exception):
    """A transfer attempt broke a :class:`TransferLimits` bound (the message names the extra)."""


class RateGuard:
    """Enforces :class:`TransferLimits` on one attempt: fed the bytes moved as they move.

    The rate is averaged over consecutive windows of ``rate_window`` seconds; the check runs
    whenever bytes move (silence itself is bounded by the read timeout).
    """

    def __init__(self, limits: TransferLimits, what: str) -> None:
        self._limits = limits
        self._what = what
        self._started = self._window_start = time.monotonic()
        self._window_bytes = 0
        self.total = 0

    def advance(self, count: int) -> None:
        """Record ``count`` more bytes; raise :class:`TransferTooSlow` if a bound is broken."""
        self.total += count
        self._window_bytes += count
        now = time.monotonic()
        limits = self._limits
        if limits.max_time and now - self._started > limits.max_time:
            raise TransferTooSlow(
                f"{self._what} took longer than {limits.max_time:g}s (connection extra "
                f"transfer_max_time) after {self.total} bytes"
            )
        elapsed = now - self._window_start
        if elapsed < limits.rate_window:
            return
        if limits.min_rate and self._window_bytes < limits.min_rate * elapsed:
            raise TransferTooSlow(
                f"{self._what} is too slow: {self._window_bytes} bytes in the last {elapsed:.1f}s, "
                f"below the minimum of {limits.min_rate:g} bytes/s (connection extras transfer_min_rate, "
                "transfer_rate_window)"
            )
        self._window_start, self._window_bytes = now, 0


class CorruptBody(Exception):
    """A body that cannot be decoded, or ended before its encoding says it is complete."""


class Gunzip:
    """Streams the decoding of a ``Content-Encoding: gzip`` body and knows whether it ended whole.

    urllib3's decoder accepts a gzip stream cut short (a body delimited by the connection's
    close has no length to check): here the gzip trailer (CRC-32 and size of the content, checked
    by zlib) must be reached. Members may follow one another; output comes in bounded pieces.
    """

    PIECE = 1 << 20

    def __init__(self) -> None:
        self._decoder = zlib.decompressobj(wbits=31)
        self._open = False  # a member has started and its trailer has not been read yet

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of the next ``data`` bytes."""
        while data:
            self._open = True
            try:
                piece = self._decoder.decompress(data, self.PIECE)
            except zlib.error as exc:
                raise CorruptBody(f"the gzip body is corrupt ({exc})") from None
            if piece:
                yield piece
            if self._decoder.eof:
                data = self._decoder.unused_data
                self._decoder, self._open = zlib.decompressobj(wbits=31), False
            else:
                data = self._decoder.unconsumed_tail

    def finish(self) -> None:
        """Raise :class:`CorruptBody` if the body ended inside a gzip member."""
        if self._open:
            raise CorruptBody("the gzip body ended before its end (cut short)")


def log_progress(verb: str, label: str, done: int, total: int | None, elapsed: float) -> None:
    """One progress line: how much, what share, how fast."""
    rate = done / elapsed / 1e6 if elapsed > 0 else 0.0
    share = f" ({100 * done / total:.0f}%)" if total else ""
    log.info("%s %s: %.1f MB%s at %.1f MB/s", verb, label, done / 1e6, share, rate)
