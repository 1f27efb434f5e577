"""One retry policy for every API call, written once as a sans-IO plan.

:func:`call_plan` is a generator: it yields the request to send (or a pause to take), is sent
back what the transport observed, and finally returns the parsed answer or raises a typed error.
:func:`run_sync` and :func:`run_async` only carry out those instructions with requests and
httpx2, so retries, ``Retry-After``, deadlines and the "never send POST /job twice" rule live
in this one place. Besides requests and pauses, a plan may yield a :class:`Lookup` (did a POST
whose answer was lost take effect?), which carries the function that finds out.
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
    AmbiguousRequestError,
    MusicAIAPIError,
    MusicAIError,
    MusicAILookupFailedError,
    MusicAIResponseTooLargeError,
    MusicAITransportError,
    is_transient,
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
    this idempotency key?). The driver calls ``find`` (the async driver awaits what it returns) and
    answers the plan with the call's result if it did, None if not, or throws the
    :class:`MusicAIError` it raised into the plan."""

    description: str
    find: Callable[[], Any]


Outcome = HttpAnswer | TransportFailure | Refused
Step = ApiRequest[Any] | Pause | Lookup
Plan = Generator[Step, Any, T]


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
            ambiguous, retry_after = outcome.maybe_sent, None
        else:  # pragma: no cover - a driver bug, not a runtime condition
            raise TypeError(f"call_plan was sent {outcome!r}")
        maybe_processed = maybe_processed or ambiguous
        if not is_transient(error) or (isinstance(error, MusicAITransportError) and error.permanent):
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


def run_sync(plan: Plan[T], send: Callable[[ApiRequest[Any]], Any]) -> T:
    """Carry out ``plan`` in blocking code: pauses by sleeping, lookups by their ``find``, requests by
    ``send`` (an error either raises is thrown into the plan, which may handle it)."""
    step = next(plan)
    while True:
        try:
            if isinstance(step, Pause):
                time.sleep(step.seconds)
                step = plan.send(None)
                continue
            try:
                answer = step.find() if isinstance(step, Lookup) else send(step)
            except MusicAIError as error:
                step = plan.throw(error)
            else:
                step = plan.send(answer)
        except StopIteration as done:
            return cast(T, done.value)


async def run_async(plan: Plan[T], send: Callable[[ApiRequest[Any]], Awaitable[Any]]) -> T:
    """Carry out ``plan`` on an asyncio loop, as :func:`run_sync` does."""
    step = next(plan)
    while True:
        try:
            if isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
                step = plan.send(None)
                continue
            try:
                answer = await (step.find() if isinstance(step, Lookup) else send(step))
            except MusicAIError as error:
                step = plan.throw(error)
            else:
                step = plan.send(answer)
        except StopIteration as done:
            return cast(T, done.value)
