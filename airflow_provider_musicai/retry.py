"""An Airflow 3.3 retry policy for the provider's typed errors.

Airflow 3.3 lets a task take ``retry_policy=``: a ``airflow.sdk.RetryPolicy`` that sees the
exception a try failed with and decides whether the task is retried, and after how long.
:func:`musicai_retry_policy` is the mapping users would otherwise write themselves::

    MusicAICreateJobOperator(..., retries=3, retry_policy=musicai_retry_policy())

* bad input or setup (400/422 ``MusicAIInvalidRequestError``, 401/403, a refused redirect or
  oversized answer, a ``MusicAIConfigurationError``, a TLS failure): fail now, the same request
  would fail again;
* 429 (``MusicAIRateLimitError``): retry after its ``Retry-After`` (capped);
* 5xx, no answer (``MusicAITransportError``), an unreadable 2xx (a proxy's page): retry, after
  ``transient_delay`` or the task's ``retry_delay``;
* anything else (a FAILED job, a timeout...): Airflow's default, the task's ``retries``.

A job that FAILED with ``BAD_INPUT`` is never retried either way (``MusicAIBadInputError`` is an
``AirflowFailException``, which Airflow does not ask a policy about). A retry still counts against
the task's ``retries``: the policy fails a task earlier, never retries it more often.

The module imports on every supported Airflow; on one without retry policies (before 3.3),
creating the policy raises ``MusicAIConfigurationError`` saying so.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_musicai.exceptions import (
    MusicAIAuthError,
    MusicAIConfigurationError,
    MusicAIInvalidRequestError,
    MusicAIMalformedResponseError,
    MusicAIRateLimitError,
    MusicAIRedirectError,
    MusicAIResponseTooLargeError,
    MusicAIServerError,
    MusicAITransportError,
)

if TYPE_CHECKING:
    from airflow.sdk import RetryDecision, RetryPolicy
else:
    try:
        from airflow.sdk import RetryPolicy
    except ImportError:  # Airflow before 3.3 (or 2.x, which has no airflow.sdk)
        RetryPolicy = object

__all__ = ["MusicAIRetryPolicy", "musicai_retry_policy"]

#: Errors that sending the same request again cannot fix: the task fails without a retry.
FAIL_NOW: tuple[type[BaseException], ...] = (
    MusicAIInvalidRequestError,
    MusicAIAuthError,
    MusicAIRedirectError,
    MusicAIResponseTooLargeError,
    MusicAIConfigurationError,
)
#: Errors a later try may not meet (the hook's own retries were already spent on them).
TRANSIENT: tuple[type[BaseException], ...] = (
    MusicAIServerError,
    MusicAITransportError,
    MusicAIMalformedResponseError,
)

#: The longest ``Retry-After`` the policy waits by default: a server asking for days is not obeyed.
DEFAULT_MAX_RATE_LIMIT_DELAY = timedelta(hours=1)


def _needs_airflow_3_3() -> MusicAIConfigurationError:
    from airflow import __version__

    return MusicAIConfigurationError(
        f"musicai_retry_policy() needs Airflow 3.3 or later, which added retry policies (the "
        f"retry_policy task argument); this is Airflow {__version__}. Leave retry_policy out here: "
        "BAD_INPUT job failures are still never retried."
    )


class MusicAIRetryPolicy(RetryPolicy):
    """Retry decisions for the provider's typed errors (see the module's table).

    :param transient_delay: wait before retrying a transient error; None: the task's ``retry_delay``.
    :param max_rate_limit_delay: the longest ``Retry-After`` obeyed; a longer one is cut to it.
    """

    def __init__(
        self,
        *,
        transient_delay: timedelta | None = None,
        max_rate_limit_delay: timedelta = DEFAULT_MAX_RATE_LIMIT_DELAY,
    ) -> None:
        if RetryPolicy is object:
            raise _needs_airflow_3_3()
        self.transient_delay = transient_delay
        self.max_rate_limit_delay = max_rate_limit_delay

    def evaluate(
        self, exception: BaseException, try_number: int, max_tries: int, context: Any = None
    ) -> RetryDecision:
        from airflow.sdk import RetryDecision

        name = type(exception).__name__
        if isinstance(exception, FAIL_NOW) or (
            isinstance(exception, MusicAITransportError) and exception.permanent
        ):
            return RetryDecision.fail(f"{name}: the same request would fail again")
        if isinstance(exception, MusicAIRateLimitError):
            if exception.retry_after is None:
                return RetryDecision.retry(reason=f"{name}: rate limited (no Retry-After)")
            delay = min(timedelta(seconds=exception.retry_after), self.max_rate_limit_delay)
            return RetryDecision.retry(delay, f"{name}: rate limited, Retry-After {exception.retry_after:g}s")
        if isinstance(exception, TRANSIENT):
            return RetryDecision.retry(self.transient_delay, f"{name}: transient")
        return RetryDecision.default()

    def serialize(self) -> dict[str, Any]:
        """The policy's settings as JSON (Airflow itself stores only that a task has a policy)."""
        return {
            "__type": f"{type(self).__module__}.{type(self).__qualname__}",
            "transient_delay": None if self.transient_delay is None else self.transient_delay.total_seconds(),
            "max_rate_limit_delay": self.max_rate_limit_delay.total_seconds(),
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> MusicAIRetryPolicy:
        """The policy :meth:`serialize` described."""
        transient = data.get("transient_delay")
        return cls(
            transient_delay=None if transient is None else timedelta(seconds=transient),
            max_rate_limit_delay=timedelta(seconds=data["max_rate_limit_delay"]),
        )


def musicai_retry_policy(
    *,
    transient_delay: timedelta | None = None,
    max_rate_limit_delay: timedelta = DEFAULT_MAX_RATE_LIMIT_DELAY,
) -> MusicAIRetryPolicy:
    """The retry policy for tasks that call Music AI (Airflow 3.3+): bad input fails at once, a 429
    waits its ``Retry-After``, transient errors retry, the rest follows the task's ``retries``.

    Raises ``MusicAIConfigurationError`` on Airflow
    before 3.3, which has no retry policies.
    """
    return MusicAIRetryPolicy(transient_delay=transient_delay, max_rate_limit_delay=max_rate_limit_delay)
