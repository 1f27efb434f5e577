"""Each Music AI endpoint, defined once: method, path, query, response shape and error mapping.

This module does no I/O. The sync (requests) and async (httpx2) transports both build requests
with :func:`build_request` and read answers with :func:`interpret_response`, so the two paths
cannot drift apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from airflow_provider_musicai.exceptions import (
    MusicAIAPIError,
    MusicAIAuthError,
    MusicAIConfigurationError,
    MusicAIInvalidRequestError,
    MusicAIMalformedResponseError,
    MusicAINotFoundError,
    MusicAIRateLimitError,
    MusicAIRedirectError,
    MusicAIServerError,
)

T = TypeVar("T")

_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")  # used with fullmatch: no trailing newline

#: Deepest JSON nesting accepted in an answer. Real documents nest 3-4 levels; a deeper one would
#: pass the parser, then crash serialization (XCom, trigger events) with RecursionError later.
MAX_JSON_DEPTH = 64


@dataclass(frozen=True)
class Endpoint(Generic[T]):
    """One API operation. ``retry_safe`` is False where sending twice could act twice (POST /job)."""

    method: str
    path: str
    parse: Callable[[Any], T]
    retry_safe: bool = True

    @property
    def label(self) -> str:
        """``"GET /job/{id}"``: names the endpoint in logs and errors, never with secrets."""
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class ApiRequest(Generic[T]):
    """A request ready for any transport: the path is relative to the connection's base URL."""

    endpoint: Endpoint[T]
    path: str
    params: tuple[tuple[str, str], ...] = ()
    json_body: Mapping[str, Any] | None = None


class MalformedResponse(ValueError):
    """A 2xx body that is not the documented shape (turned into MusicAIAPIError by the caller)."""


def _require_mapping(body: Any, *fields: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise MalformedResponse(f"expected a JSON object, got {type(body).__name__}")
    missing = [name for name in fields if not isinstance(body.get(name), str) or not body.get(name)]
    if missing:
        raise MalformedResponse(f"missing or non-string field(s): {', '.join(missing)}")
    return body


def _parse_job(body: Any) -> dict[str, Any]:
    return _require_mapping(body, "id", "status")


def _parse_status(body: Any) -> str:
    return str(_require_mapping(body, "status")["status"])


def _parse_id(body: Any) -> str:
    return str(_require_mapping(body, "id")["id"])


def _parse_created_id(body: Any) -> str:
    job_id = _parse_id(body)
    if not is_job_id(job_id):
        raise MalformedResponse(f"the new job's id {_shown(job_id)} is not a valid job id")
    return job_id


def _parse_list(key: str, *, job_ids: bool = False) -> Callable[[Any], list[dict[str, Any]]]:
    def parse(body: Any) -> list[dict[str, Any]]:
        # The reference documents {"<key>": [...]} but its example shows a bare array: accept both.
        items = body.get(key) if isinstance(body, dict) else body
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise MalformedResponse(f"expected a list of objects or an object with a {key!r} list")
        if job_ids:
            for index, item in enumerate(items):
                if not is_job_id(item.get("id")):
                    raise MalformedResponse(
                        f"listed job #{index} has no valid 'id' ({_shown(item.get('id'))})"
                    )
        return items

    return parse


def _parse_application(body: Any) -> dict[str, Any]:
    return _require_mapping(body, "id", "name")


def _parse_upload(body: Any) -> dict[str, str]:
    mapping = _require_mapping(body, "uploadUrl", "downloadUrl")
    return {"uploadUrl": mapping["uploadUrl"], "downloadUrl": mapping["downloadUrl"]}


GET_APPLICATION = Endpoint("GET", "/application", _parse_application)
GET_UPLOAD_URL = Endpoint("GET", "/upload", _parse_upload)
GET_JOB = Endpoint("GET", "/job/{id}", _parse_job)
GET_JOB_STATUS = Endpoint("GET", "/job/{id}/status", _parse_status)
LIST_JOBS = Endpoint("GET", "/job", _parse_list("jobs", job_ids=True))
CREATE_JOB = Endpoint("POST", "/job", _parse_created_id, retry_safe=False)
DELETE_JOB = Endpoint("DELETE", "/job/{id}", _parse_id)
LIST_WORKFLOWS = Endpoint("GET", "/workflow", _parse_list("workflows"))


def is_job_id(value: Any) -> bool:
    """True if ``value`` is a job id string: the whole string, no trailing newline or space."""
    return isinstance(value, str) and _JOB_ID.fullmatch(value) is not None


def validate_job_id(job_id: Any) -> str:
    """Return ``job_id`` as a string or raise naming the problem, before any request is sent."""
    if not is_job_id(job_id):
        raise MusicAIConfigurationError(
            f"Malformed Music AI job id {_shown(job_id)}: expected the id string returned when the job "
            "was created (letters, digits, '-' or '_')"
        )
    return str(job_id)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True if ``value`` nests containers deeper than ``limit`` (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children: Iterable[Any] = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def build_request(
    endpoint: Endpoint[T],
    *,
    job_id: str | None = None,
    query: Iterable[tuple[str, str | int | Sequence[str] | None]] = (),
    json_body: Mapping[str, Any] | None = None,
) -> ApiRequest[T]:
    """Fill the endpoint's path and flatten the query: a list value repeats its parameter."""
    path = endpoint.path
    if "{id}" in path:
        path = path.replace("{id}", quote(validate_job_id(job_id), safe=""))
    params: list[tuple[str, str]] = []
    for name, value in query:
        if value is None:
            continue
        values = [value] if isinstance(value, (str, int)) else list(value)
        params.extend((name, str(item)) for item in values)
    return ApiRequest(endpoint=endpoint, path=path, params=tuple(params), json_body=json_body)


def interpret_response(request: ApiRequest[T], status: int, body: bytes, content_type: str | None) -> T:
    """Return the parsed body of a 2xx answer, or raise the typed error its status means."""
    label = request.endpoint.label
    if status >= 400 or status < 200:
        raise error_for_status(label, status, body, content_type)
    try:
        decoded = json.loads(body) if body else None
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise MusicAIMalformedResponseError(
            f"The response body is not JSON ({_describe(body, content_type)}).",
            status_code=status,
            endpoint=label,
        ) from None
    if json_depth_exceeds(decoded):
        raise MusicAIMalformedResponseError(
            f"The response nests JSON deeper than {MAX_JSON_DEPTH} levels; refusing it.",
            status_code=status,
            endpoint=label,
        )
    try:
        return request.endpoint.parse(decoded)
    except MalformedResponse as exc:
        raise MusicAIMalformedResponseError(
            f"The response does not have the documented shape: {exc}.", status_code=status, endpoint=label
        ) from None


_ERRORS: dict[int, type[MusicAIAPIError]] = {
    400: MusicAIInvalidRequestError,
    401: MusicAIAuthError,
    403: MusicAIAuthError,
    404: MusicAINotFoundError,
    422: MusicAIInvalidRequestError,
    429: MusicAIRateLimitError,
}

_HINTS: dict[int, str] = {
    401: "Check the API key in the connection's password field.",
    403: "The API key is not allowed to do this.",
    404: "The job or workflow does not exist for this API key (jobs are visible only to the key that "
    "created them).",
    422: "The workflow refused these params; check them against the workflow's inputs.",
    429: "Rate limited; retries were exhausted.",
}


def error_for_status(
    label: str, status: int, body: bytes, content_type: str | None, retry_after: float | None = None
) -> MusicAIAPIError:
    """The typed error for an HTTP error answer, carrying the API's own message when it has one
    (and the answer's ``Retry-After`` seconds)."""
    if 300 <= status < 400:
        return MusicAIRedirectError(
            f"The API answered with a redirect. {label.split(' ')[0]} calls that change state (or a "
            "redirect that cannot be followed) are never sent to another location.",
            status_code=status,
            endpoint=label,
        )
    cls = _ERRORS.get(status) or (MusicAIServerError if status >= 500 else MusicAIAPIError)
    api_message = api_message_of(body)
    hint = _HINTS.get(status, "")
    if api_message is None and body:
        hint = f"{hint} The response body is not a JSON error ({_describe(body, content_type)}).".strip()
    return cls(hint, status_code=status, endpoint=label, api_message=api_message, retry_after=retry_after)


def api_message_of(body: bytes) -> str | None:
    """The ``message`` (or ``error``) text of a JSON error body, shortened; None if there is none."""
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(decoded, dict):
        return None
    for key in ("message", "error", "detail"):
        value = decoded.get(key)
        if isinstance(value, (str, int, float)) and str(value).strip():
            text = str(value).strip()
            return text if len(text) <= 300 else text[:297] + "..."
        if isinstance(value, list) and value:
            return "; ".join(str(item) for item in value)[:300]
    return None


def _describe(body: bytes, content_type: str | None) -> str:
    kind = (content_type or "no content type").split(";")[0].strip()
    return f"{kind}, {len(body)} bytes"
