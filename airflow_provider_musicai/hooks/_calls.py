"""One retry policy for every API call, written once as a sans-IO plan.

:func:`call_plan` is a generator: it yields the request to send (or a pause to take), is sent
back what the transport observed, and finally returns the parsed answer or raises a typed error.
:func:`run_sync` and :func:`run_async` only carry out those instructions with requests and
httpx2, so retries, ``Retry-After``, deadlines and the "never send POST /job twice" rule live
in this one place. Two more kinds of step go through the same drivers: a :class:`Lookup` (did a
POST whose answer was lost take effect?) and a transfer :class:`Attempt` (one try of an upload or a
download to a signed URL, retried by :func:`transfer_plan` under the same policy).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import unquote

from airflow_provider_musicai.exceptions import (
    MusicAIAPIError,
    MusicAIError,
    MusicAIResponseTooLargeError,
    MusicAITransportError,
)
from airflow_provider_musicai.hooks._api import DELETE_JOB, ApiRequest, error_for_status, interpret_response
from airflow_provider_musicai.hooks._config import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class HttpAnswer:
    """A complete HTTP answer, body included."""

    status: int
    body: bytes
    content_type: str | None
    retry_after: float | None = None


@dataclass(frozen=True)
class TransportFailure:
    """No complete answer. ``maybe_sent`` is False only when the request surely never left;
    ``permanent`` marks failures that another attempt cannot cure (an untrusted certificate)."""

    description: str
    maybe_sent: bool
    permanent: bool = False


@dataclass(frozen=True)
class Refused:
    """An answer the transport refused to read to its end (larger than ``max_response_bytes``)."""

    status: int
    limit: int


@dataclass(frozen=True)
class Pause:
    """Sleep this long before the next attempt."""

    seconds: float


@dataclass(frozen=True)
class Lookup:
    """Find out whether a request whose answer was lost took effect (POST /job: is there a job with
    this idempotency key?). The driver answers with the call's result if it did, None if not, or
    throws the lookup's :class:`MusicAIError` into the plan."""

    description: str


@dataclass(frozen=True)
class Attempt:
    """Carry out attempt ``number`` (0 first) of a transfer; the driver answers with
    :class:`Completed` or :class:`RetryableFailure` (or raises an error that ends it)."""

    number: int


@dataclass(frozen=True)
class Completed:
    """A transfer attempt that succeeded, with its value."""

    value: Any


@dataclass(frozen=True)
class RetryableFailure:
    """A transfer attempt that failed in a way another attempt may cure."""

    error: MusicAIError
    retry_after: float | None = None


Outcome = HttpAnswer | TransportFailure | Refused
Step = ApiRequest[Any] | Pause | Lookup | Attempt
Plan = Generator[Step, Any, T]


class AmbiguousRequestError(MusicAIError):
    """A request that must not be repeated blindly (POST /job) may or may not have been processed."""

    def __init__(self, cause: MusicAIError) -> None:
        super().__init__(f"The outcome of the request is unknown: {cause}")
        self.cause = cause


class MusicAILookupFailedError(MusicAIError):
    """A request's answer was lost and checking whether it took effect failed too: not sent again."""

    def __init__(self, cause: MusicAIError, lookup_error: MusicAIError) -> None:
        super().__init__(
            f"{cause} Whether it took effect could not be checked ({lookup_error}); not sending it "
            "again, to avoid doing it twice."
        )
        self.cause = cause
        self.lookup_error = lookup_error


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), if valid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def call_plan(
    request: ApiRequest[T],
    policy: RetryPolicy,
    clock: Callable[[], float] = time.monotonic,
    *,
    lookup: Lookup | None = None,
) -> Plan[T]:
    """Send ``request`` until it succeeds, fails for good, or the retry budget is spent.

    A request that must not be repeated blindly (POST /job) whose outcome is unknown raises
    :class:`AmbiguousRequestError`, unless ``lookup`` says how to check: then the plan yields it, ends
    with what it found, and sends the request again (after a pause) only if it found nothing.
    """
    label = request.endpoint.label
    started = clock()
    retries = 0
    maybe_processed = False
    while True:
        outcome = yield request
        error: MusicAIError
        if isinstance(outcome, HttpAnswer):
            if 200 <= outcome.status < 300:
                return interpret_response(request, outcome.status, outcome.body, outcome.content_type)
            if outcome.status == 404 and maybe_processed and request.endpoint is DELETE_JOB:
                # An earlier attempt whose answer was lost deleted the job: that is success.
                return request.endpoint.parse({"id": unquote(request.path.rsplit("/", 1)[-1])})
            error = error_for_status(
                label, outcome.status, outcome.body, outcome.content_type, outcome.retry_after
            )
            transient = outcome.status == 429 or outcome.status >= 500
            ambiguous = outcome.status >= 500
            retry_after = outcome.retry_after
        elif isinstance(outcome, Refused):
            # Not retried: the same request would get the same answer.
            raise MusicAIResponseTooLargeError(
                f"The answer is larger than max_response_bytes={outcome.limit} once decoded; refusing "
                "to read it (raise the connection extra if such answers are expected).",
                status_code=outcome.status,
                endpoint=label,
            )
        elif isinstance(outcome, TransportFailure):
            error = MusicAITransportError(
                f"Music AI {label} failed: {outcome.description}", endpoint=label, permanent=outcome.permanent
            )
            transient, ambiguous, retry_after = not outcome.permanent, outcome.maybe_sent, None
        else:  # pragma: no cover - a driver bug, not a runtime condition
            raise TypeError(f"call_plan was sent {outcome!r}")
        maybe_processed = maybe_processed or ambiguous
        if not transient:
            raise error
        if ambiguous and not request.endpoint.retry_safe:
            if lookup is None:
                raise AmbiguousRequestError(error)
            log.warning("Music AI %s: %s; %s", label, error, lookup.description)
            try:
                found = yield lookup
            except MusicAIError as lookup_error:
                # Without knowing, sending again could create a duplicate: give up instead.
                raise MusicAILookupFailedError(error, lookup_error) from None
            if found is not None:
                log.info("Music AI %s took effect before its answer was lost: %s", label, found)
                return cast(T, found)
        retries += 1
        delay = policy.delay(retries, retry_after)
        if not policy.allows(retries, clock() - started, delay):
            raise error
        log.warning(
            "Music AI %s: %s; retry %d/%d in %.1fs", label, _short(error), retries, policy.max_retries, delay
        )
        yield Pause(delay)


def _short(error: MusicAIError) -> str:
    if isinstance(error, MusicAIAPIError) and error.status_code is not None:
        return f"HTTP {error.status_code}" + (f" ({error.api_message})" if error.api_message else "")
    return str(error).split(": ", 1)[-1]


def transfer_plan(what: str, policy: RetryPolicy, clock: Callable[[], float] = time.monotonic) -> Plan[T]:
    """Attempt a transfer until one attempt completes, one fails for good, or the budget is spent.

    Each attempt starts again from the first byte (a signed URL offers no resumption).
    """
    started = clock()
    retries = 0
    while True:
        outcome = yield Attempt(retries)
        if isinstance(outcome, Completed):
            return cast(T, outcome.value)
        if not isinstance(outcome, RetryableFailure):  # pragma: no cover - a driver bug
            raise TypeError(f"transfer_plan was sent {outcome!r}")
        retries += 1
        delay = policy.delay(retries, outcome.retry_after)
        if not policy.allows(retries, clock() - started, delay):
            raise outcome.error
        log.warning("%s: %s; starting again in %.1fs (retry %d)", what, outcome.error, delay, retries)
        yield Pause(delay)


def run_sync(plan: Plan[T], send: Callable[[Any], Any]) -> T:
    """Carry out ``plan`` in blocking code: pauses by sleeping, every other step by ``send``
    (an error it raises is thrown into the plan, which may handle it)."""
    step = next(plan)
    while True:
        try:
            if isinstance(step, Pause):
                time.sleep(step.seconds)
                step = plan.send(None)
                continue
            try:
                answer = send(step)
            except MusicAIError as error:
                step = plan.throw(error)
            else:
                step = plan.send(answer)
        except StopIteration as done:
            return cast(T, done.value)


async def run_async(plan: Plan[T], send: Callable[[Any], Awaitable[Any]]) -> T:
    """Carry out ``plan`` on an asyncio loop, as :func:`run_sync` does."""
    step = next(plan)
    while True:
        try:
            if isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
                step = plan.send(None)
                continue
            try:
                answer = await send(step)
            except MusicAIError as error:
                step = plan.throw(error)
            else:
                step = plan.send(answer)
        except StopIteration as done:
            return cast(T, done.value)
