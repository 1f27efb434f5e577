"""The emulator's clock: real time plus an offset, optionally frozen, and callbacks due at clock times.

Every time the emulator shows or checks (job timestamps and life cycle, signed-URL expiry) comes from
:class:`Clock`, so a test can stop time-driven progress (``freeze``) and move time forward on demand
(``advance``) instead of sleeping. Callbacks scheduled with :meth:`Clock.call_at` run on the event loop
when the clock reaches their time: by a loop timer while the clock runs, or by :meth:`Clock.advance`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections.abc import Callable


class Clock:
    """Emulated time in Unix seconds; thread-safe reads, scheduling on one event loop."""

    def __init__(self, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen_at: float | None = time.time() if frozen else None
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def now(self) -> float:
        """The current emulated time."""
        with self._lock:
            base = self._frozen_at if self._frozen_at is not None else time.time()
            return base + self._offset

    @property
    def frozen(self) -> bool:
        """Whether time stands still until :meth:`advance`."""
        return self._frozen_at is not None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run due callbacks on ``loop`` from now on."""
        self._loop = loop

    def set_frozen(self, frozen: bool) -> None:
        """Stop (or resume) the passing of time; emulated time continues from where it stands."""
        with self._lock:
            if frozen and self._frozen_at is None:
                self._frozen_at = time.time()
            elif not frozen and self._frozen_at is not None:
                self._offset += self._frozen_at - time.time()
                self._frozen_at = None
        self._wake()

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (>= 0) and run the callbacks now due; returns the new time."""
        if seconds < 0 or seconds != seconds:
            raise ValueError("'seconds' must be a number >= 0")
        with self._lock:
            self._offset += seconds
        self._wake()
        return self.now()

    def reset(self, frozen: bool) -> None:
        """Back to real time (frozen at the real time if ``frozen``); drop every pending callback."""
        with self._lock:
            self._offset = 0.0
            self._frozen_at = time.time() if frozen else None
            self._heap = []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop once the clock reaches ``when`` (call from the loop's thread)."""
        heapq.heappush(self._heap, (when, next(self._seq), callback))
        self._wake()

    def call_at_threadsafe(self, when: float, callback: Callable[[], None]) -> None:
        """:meth:`call_at` from any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.call_at, when, callback)

    def _wake(self) -> None:
        """Run due callbacks, then arm a loop timer for the next one (unless frozen)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._heap and self._heap[0][0] <= self.now():
            _, _, callback = heapq.heappop(self._heap)
            callback()
        if self._heap and not self.frozen and self._loop is not None:
            delay = max(0.0, self._heap[0][0] - self.now())
            self._timer = self._loop.call_later(delay, self._wake)
