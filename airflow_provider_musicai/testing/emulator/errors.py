"""Typed API errors of the emulator: one class per error the API answers, rendered by one handler.

In the style of moto's ``ServiceException``: each class carries its HTTP status and default message;
raise it anywhere in a request and :func:`render` turns it into ``{"statusCode", "error", "message"}``
(the error body shape is assumed, see FIDELITY.md).
"""

from __future__ import annotations

from typing import ClassVar

from fastapi.responses import JSONResponse

REASONS = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    411: "Length Required", 413: "Payload Too Large", 415: "Unsupported Media Type",
    422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
}  # fmt: skip


class EmulatorApiError(Exception):
    """Base class: an API error with an HTTP ``status`` and a user-facing message."""

    status: ClassVar[int] = 500
    message: ClassVar[str] = "Internal server error."

    def __init__(self, message: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.message)
        self.headers = headers or {}

    def render(self) -> JSONResponse:
        """The JSON error answer."""
        body = {"statusCode": self.status, "error": REASONS.get(self.status, "Error"), "message": str(self)}
        return JSONResponse(body, status_code=self.status, headers=self.headers or None)


class BadRequest(EmulatorApiError):
    """400: the request is malformed (body, query parameter)."""

    status = 400
    message = "Bad request."


class InvalidBody(BadRequest):
    """400: the JSON body is not an object or a field has the wrong type."""

    message = "The request body must be a JSON object."


class InvalidJobId(BadRequest):
    """400: the job id in the path is not a UUID (the reference's wording)."""

    message = "Invalid job ID format"


class Unauthorized(EmulatorApiError):
    """401: no or unknown API key."""

    status = 401
    message = "Missing or invalid API key."


class RouteNotFound(EmulatorApiError):
    """404: no such route."""

    status = 404
    message = "Not found."


class JobNotFound(RouteNotFound):
    """404: no job with this id for this API key."""

    message = "Job not found"


class WorkflowNotFound(RouteNotFound):
    """404: no workflow with this slug."""

    message = "Workflow not found"


class MethodNotAllowed(EmulatorApiError):
    """405: the route exists for other methods."""

    status = 405
    message = "Method not allowed."


class InvalidParams(EmulatorApiError):
    """422: the params do not fit the workflow's input schema (or ``copyResultsTo`` its outputs)."""

    status = 422
    message = "Invalid workflow parameters."


class WorkflowContainsErrors(InvalidParams):
    """422: the workflow was saved with errors (a declared workflow's ``errors``)."""

    message = "The workflow contains errors."


_BY_STATUS: dict[int, type[EmulatorApiError]] = {400: BadRequest, 404: RouteNotFound, 405: MethodNotAllowed}


def from_status(status: int, message: str, headers: dict[str, str] | None = None) -> EmulatorApiError:
    """The typed error for a framework-raised HTTP error of ``status``."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = type(f"Http{status}", (EmulatorApiError,), {"status": status})
    return cls(message, headers)
