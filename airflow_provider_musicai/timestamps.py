"""UTC time stamps for log lines, and the clock-skew allowance a server's timestamps are checked with."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

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
