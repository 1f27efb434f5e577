"""Typed errors raised by the Music AI provider.

All are :class:`~airflow.exceptions.AirflowException` subclasses, so Airflow treats them as
ordinary task failures. None of them ever carries the API key or a signed URL's query string.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_musicai.redaction import printable


class MusicAIError(AirflowException):
    """Base class of every error raised by this provider."""


class MusicAIConfigurationError(MusicAIError):
    """The connection or an argument is unusable (missing key, bad URL, bad metadata...)."""


class MusicAIInputError(MusicAIConfigurationError):
    """A local input (upload source, download destination) is missing, empty or unusable."""


class MusicAITransportError(MusicAIError):
    """The request did not get an HTTP answer (DNS, refused, reset, timeout), retries exhausted.

    ``permanent`` is True for a failure that retrying cannot fix (a TLS certificate or handshake
    problem), which was therefore not retried.
    """

    def __init__(self, message: str, *, endpoint: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.permanent = permanent

    def __reduce__(self) -> Any:
        kwargs = {"endpoint": self.endpoint, "permanent": self.permanent}
        return (_rebuild, (type(self), (str(self),), kwargs))


class MusicAIAPIError(MusicAIError):
    """The API answered with an error status or with a body that cannot be understood."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None,
        endpoint: str,
        api_message: str | None = None,
        retry_after: float | None = None,
    ):
        self.status_code = status_code  # type: ignore[assignment]  # AirflowException's is an HTTPStatus
        self.endpoint = endpoint
        #: Seconds the last answer's ``Retry-After`` header asked to wait (a 429 or 503), if any.
        self.retry_after = retry_after
        # Server text: a line break in it must not forge a log line (the key is already scrubbed).
        api_message = None if api_message is None else printable(api_message)
        self.api_message = api_message
        status = f"HTTP {status_code}" if status_code is not None else "invalid response"
        detail = f": {api_message.rstrip().rstrip('.')}" if api_message else ""  # no "..": the "." follows
        super().__init__(f"Music AI {endpoint} failed ({status}){detail}. {message}".strip())
        #: The provider's own explanation or advice, without the endpoint and status before it.
        self.hint = message

    def __reduce__(self) -> Any:
        kwargs = {
            "status_code": self.status_code,
            "endpoint": self.endpoint,
            "api_message": self.api_message,
            "retry_after": self.retry_after,
        }
        return (_rebuild, (type(self), (self.hint,), kwargs))


class MusicAIMalformedResponseError(MusicAIAPIError):
    """A 2xx answer that cannot be understood (not JSON, wrong shape, nested too deep, bad job id).

    Often a proxy's or load balancer's page in place of the API's answer, so waits treat it as
    transient; calls are not retried on it.
    """


class MusicAIResponseTooLargeError(MusicAIAPIError):
    """The answer's decoded body exceeded the connection's ``max_response_bytes`` (e.g. a gzip bomb)."""


class MusicAIPagingError(MusicAIAPIError):
    """A listing that never ends: the server repeats a page, or it exceeds ``max_pages``."""


class MusicAIRedirectError(MusicAIAPIError):
    """A call that changes state (POST, DELETE) was redirected; it is never followed."""


class MusicAIAuthError(MusicAIAPIError):
    """401: the API key is missing, wrong or revoked."""


class MusicAINotFoundError(MusicAIAPIError):
    """404: the job or workflow does not exist for this application."""


class MusicAIInvalidRequestError(MusicAIAPIError):
    """400 or 422: the request was refused as invalid; sending it again will not help."""


class MusicAIRateLimitError(MusicAIAPIError):
    """429 that outlasted every retry; ``retry_after`` holds the last answer's ``Retry-After``."""


class MusicAIServerError(MusicAIAPIError):
    """5xx that outlasted every retry."""


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


#: Errors that another try later may cure besides a 429 or 5xx answer: no answer at all, or an
#: unreadable or oversized 2xx answer (usually a proxy's page), so a wait polls again. A call's own
#: retries use the same rule, except that they never retry a permanent transport failure (TLS).
TRANSIENT_ERRORS: tuple[type[MusicAIError], ...] = (
    MusicAITransportError,
    MusicAIMalformedResponseError,
    MusicAIResponseTooLargeError,
)


def is_transient(error: BaseException) -> bool:
    """True for failures worth another try later: no answer, 429, 5xx, or an unreadable answer."""
    if isinstance(error, TRANSIENT_ERRORS):
        return True
    return (
        isinstance(error, MusicAIAPIError)
        and error.status_code is not None
        and (error.status_code == 429 or error.status_code >= 500)
    )


class MusicAITimeoutError(MusicAIError):
    """A job did not reach a final status before the deadline."""

    def __init__(self, message: str, *, job_id: str, last_status: str | None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.last_status = last_status

    def __reduce__(self) -> Any:
        return (
            _rebuild,
            (type(self), (str(self),), {"job_id": self.job_id, "last_status": self.last_status}),
        )


class MusicAIJobFailedError(MusicAIError):
    """The job ended FAILED. Carries the API's error code, title and message."""

    def __init__(self, job_id: str, code: str | None, title: str | None, message: str | None) -> None:
        # Server text: control characters are escaped so it cannot forge log lines.
        code, title, message = (None if text is None else printable(text) for text in (code, title, message))
        self.job_id = printable(job_id)
        self.code = code
        self.title = title
        self.error_message = message
        super().__init__(
            f"Music AI job {self.job_id} FAILED: {code or 'UNKNOWN'} ({title or 'no title'}): "
            f"{message or 'no message'}"
        )

    def __reduce__(self) -> Any:
        return (type(self), (self.job_id, self.code, self.title, self.error_message))


def _rebuild(cls: type[Exception], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Exception:
    """Unpickle an error whose constructor takes keyword-only arguments."""
    return cls(*args, **kwargs)


class MusicAIBadInputError(MusicAIJobFailedError, AirflowFailException):
    """The job FAILED with ``BAD_INPUT``: the same input would fail again, so Airflow does not retry
    the task (each retry would be another paid job). Operators raise it unless told to retry."""

    def __init__(self, job_id: str, code: str | None, title: str | None, message: str | None) -> None:
        super().__init__(job_id, code, title, message)
        self.args = (
            f"{self.args[0]}. Not retried: the same input would fail again "
            "(set retry_on_bad_input=True to retry anyway)",
        )


class MusicAIJobsFailedError(MusicAIError):
    """Some of the jobs a sensor waited on FAILED; ``failures`` holds each one's error."""

    def __init__(self, failures: list[MusicAIJobFailedError]) -> None:
        self.failures = failures
        super().__init__(
            f"{len(failures)} Music AI job(s) FAILED: " + "; ".join(str(error) for error in failures)
        )

    def __reduce__(self) -> Any:
        return (type(self), (self.failures,))


class MusicAICatalogFailedError(MusicAIError, AirflowFailException):
    """More tracks of a catalog run failed than ``max_failed_fraction`` allows. Every track was
    tried and recorded in the manifest; a retry would find them all finished, so it is not retried."""

    def __init__(self, failed: int, total: int, allowed: float, manifest: str) -> None:
        self.failed, self.total, self.allowed, self.manifest = failed, total, allowed, manifest
        super().__init__(
            f"{failed} of {total} catalog track(s) failed ({failed / max(total, 1):.1%}, more than the "
            f"{allowed:.1%} max_failed_fraction allows); see the manifest {manifest}"
        )

    def __reduce__(self) -> Any:
        return (type(self), (self.failed, self.total, self.allowed, self.manifest))


class MusicAICatalogBusyError(MusicAIError):
    """Another run of an incremental catalog holds its state (two runs at once would both pay for
    the same changed tracks). Retried: the other run ends, or its lease expires."""

    def __init__(self, holder: str, state: str) -> None:
        self.holder, self.state = holder, state
        super().__init__(
            f"Another run ({holder}) is processing this incremental catalog (lease in {state}); "
            "set max_active_runs=1 on the DAG, or delete the lease file if that run is gone"
        )

    def __reduce__(self) -> Any:
        return (type(self), (self.holder, self.state))
