"""FastAPI app of the API listener: the public ``/v1`` API plus the admin API (``/__emulator__``)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import models
from .admin import admin_router
from .runtime import Emulator
from .state import Application, JobError
from .workflows import ParamError

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_UUID_RE = re.compile(UUID_PATTERN)
_REASONS = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    411: "Length Required", 413: "Payload Too Large", 415: "Unsupported Media Type",
    422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
}  # fmt: skip


class ApiError(Exception):
    """An API error answered as ``{"statusCode", "error", "message"}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON error body every API error uses."""
    body = {"statusCode": status, "error": _REASONS.get(status, "Error"), "message": message}
    return JSONResponse(body, status_code=status, headers=headers)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": models.ErrorBody, "description": _REASONS[code]} for code in codes}


_CREATE_JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "workflow", "params"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "description": "Arbitrary job name."},
        "workflow": {"type": "string", "description": "Workflow slug."},
        "params": {
            "type": "object",
            "description": "Workflow parameters; must match the workflow's input schema "
            "(the built-in workflows take `inputUrl`).",
        },
        "metadata": {
            "type": "object",
            "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]},
        },
        "batchName": {
            "type": ["string", "null"],
            "description": "Emulator extension: batch name of the job.",
        },
        "copyResultsTo": {
            "type": "object",
            "description": "Output name -> presigned PUT URL: the output is written there and its "
            "result value becomes `[custom storage]`.",
            "additionalProperties": {"type": "string", "format": "uri"},
        },
    },
}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_create_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "The request body must be a JSON object.") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    name = body.get("name")
    if "name" not in body:
        raise ApiError(400, "Missing required field 'name'.")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "Field 'name' must be a non-empty string.")
    if "workflow" not in body:
        raise ApiError(400, "Missing required field 'workflow'.")
    if not isinstance(body["workflow"], str) or not body["workflow"]:
        raise ApiError(400, "Field 'workflow' must be a non-empty string.")
    if "params" not in body:
        raise ApiError(400, "Missing required field 'params'.")
    if not isinstance(body["params"], dict):
        raise ApiError(400, "Field 'params' must be an object.")
    metadata = body.get("metadata", {})
    if metadata is None or not isinstance(metadata, dict):
        raise ApiError(400, "Field 'metadata' must be an object.")
    for key, value in metadata.items():
        if not isinstance(value, (str, int, float, bool)):
            raise ApiError(400, f"Field 'metadata.{key}' must be a string, number or boolean.")
    copy_to = body.get("copyResultsTo", {})
    if not isinstance(copy_to, dict) or not all(
        isinstance(url, str) and url.startswith(("http://", "https://")) for url in copy_to.values()
    ):
        raise ApiError(400, "Field 'copyResultsTo' must map output names to http(s) URLs.")
    batch_name = body.get("batchName")
    if batch_name is not None and not isinstance(batch_name, str):
        raise ApiError(400, "Field 'batchName' must be a string or null.")
    return body


_KEY_HEADER = APIKeyHeader(
    name="Authorization", auto_error=False, description="The raw API key (no Bearer prefix)."
)


async def current_application(
    request: Request, key: Annotated[str | None, Security(_KEY_HEADER)]
) -> Application:
    """The application of the request's API key; 401 if missing or unknown."""
    emu: Emulator = request.app.state.emulator
    found = emu.apps.get(key) if key else None
    if found is None:
        raise ApiError(401, "Missing or invalid API key.")
    return found


App = Annotated[Application, Depends(current_application)]
JobId = Annotated[str, Path(pattern=UUID_PATTERN, description="Job ID (a UUID).")]
Page = Annotated[int, Query(ge=0, le=1_000_000, description="Page number, 0-based.")]
Size = Annotated[int, Query(ge=1, le=100, description="Page size, 1 to 100.")]


def create_app(emu: Emulator) -> FastAPI:
    """Build the API listener's app for ``emu``."""
    app = FastAPI(
        title="Music AI API (emulator)",
        version="1.0.0",
        description="Loopback emulator of the Music AI REST API. Authenticate with the raw API key in "
        "`Authorization` (no `Bearer` prefix). Error bodies are `{statusCode, error, message}`.",
        docs_url="/docs",
        redoc_url=None,
        redirect_slashes=False,
    )
    app.state.emulator = emu

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = (
            f"Cannot {request.method} {request.url.path}"
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        return error_response(exc.status_code, message, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        error = exc.errors()[0] if exc.errors() else {}
        loc = [str(part) for part in error.get("loc", ())]
        if loc and loc[0] == "path":
            return error_response(400, "Invalid job ID format")
        where = f"{loc[0]} parameter '{loc[1]}'" if len(loc) > 1 else "request"
        return error_response(400, f"Invalid {where}: {error.get('msg', 'invalid value')}.")

    api = APIRouter()

    def job_of(app_: Application, job_id: str) -> Any:
        if not _UUID_RE.match(job_id):
            raise ApiError(400, "Invalid job ID format")
        job = emu.jobs.get(app_, job_id.lower())
        if job is None:
            raise ApiError(404, "Job not found")
        return job

    @api.get(
        "/application", response_model=models.ApplicationOut, responses=_errors(401), tags=["Applications"]
    )
    async def get_application(app_: App) -> JSONResponse:
        """Get the application of the API key."""
        return JSONResponse(app_.to_json())

    @api.get("/upload", response_model=models.UploadOut, responses=_errors(401), tags=["File Upload"])
    async def get_upload(app_: App) -> JSONResponse:
        """Get signed URLs to upload a file (PUT) and download it (GET)."""
        key = emu.store.new_key()
        return JSONResponse(
            {
                "uploadUrl": emu.signer.sign_url("PUT", key, emu.config.upload_url_ttl_seconds),
                "downloadUrl": emu.signer.sign_url("GET", key, emu.config.download_url_ttl_seconds),
            }
        )

    @api.get("/job/{id}", response_model=models.JobOut, responses=_errors(400, 401, 404), tags=["Jobs"])
    async def get_job(app_: App, id: JobId) -> JSONResponse:
        """Get a job by its ID."""
        return JSONResponse(job_of(app_, id).to_doc(emu.clock.now()))

    @api.get(
        "/job/{id}/status",
        response_model=models.JobStatusOut,
        responses=_errors(400, 401, 404),
        tags=["Jobs"],
    )
    async def get_job_status(app_: App, id: JobId) -> JSONResponse:
        """Get the status of a job by its ID."""
        job = job_of(app_, id)
        return JSONResponse({"id": job.id, "status": job.status(emu.clock.now())})

    @api.delete("/job/{id}", response_model=models.JobIdOut, responses=_errors(400, 401, 404), tags=["Jobs"])
    async def delete_job(app_: App, id: JobId) -> JSONResponse:
        """Delete a job (a QUEUED or STARTED job is stopped)."""
        job = job_of(app_, id)
        if emu.jobs.delete(app_, job.id) is None:
            raise ApiError(404, "Job not found")
        emu.runner.release(job)
        emu.counters.job_deleted()
        return JSONResponse({"id": job.id})

    @api.get(
        "/job",
        response_model=list[models.JobOut] | models.JobListOut,
        responses=_errors(400, 401),
        tags=["Jobs"],
    )
    async def list_jobs(
        app_: App,
        status: Annotated[
            list[models.JobStatus] | None, Query(description="Filter by status (repeatable).")
        ] = None,
        workflow: Annotated[
            list[str] | None, Query(description="Filter by workflow slug (repeatable).")
        ] = None,
        batchName: Annotated[str | None, Query(description="Filter by batch name.")] = None,
        page: Page = 0,
        size: Size = 100,
    ) -> JSONResponse:
        """List jobs, newest first (a bare array by default; ``{"jobs": [...]}`` when so configured)."""
        jobs = emu.jobs.query(
            app_,
            statuses=[s.value for s in status or ()],
            workflows=workflow or (),
            batch_name=batchName,
            page=page,
            size=min(size, emu.config.max_page_size),
        )
        return JSONResponse(jobs if emu.config.list_shape == "array" else {"jobs": jobs})

    @api.post(
        "/job",
        response_model=models.JobIdOut,
        responses=_errors(400, 401, 404, 422),
        tags=["Jobs"],
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": _CREATE_JOB_SCHEMA}}}
        },
    )
    async def create_job(app_: App, request: Request) -> JSONResponse:
        """Create a job processed asynchronously by the given workflow."""
        body = _parse_create_body(await request.body())
        workflow = emu.workflows.get(body["workflow"])
        if workflow is None:
            raise ApiError(404, "Workflow not found")
        try:
            workflow.validate_params(body["params"])
        except ParamError as exc:
            raise ApiError(422, str(exc)) from exc
        copy_to = dict(body.get("copyResultsTo") or {})
        unknown = sorted(set(copy_to) - set(workflow.outputs))
        if unknown and emu.config.copy_results_unknown_outputs == "reject":
            raise ApiError(
                422, f"Unknown output '{unknown[0]}' in copyResultsTo for workflow '{workflow.slug}'."
            )
        injected = emu.faults.job_error(workflow.slug)
        job = emu.jobs.new_job(
            app_,
            queued=emu.config.queued_seconds,
            processing=emu.config.processing_seconds,
            name=body["name"],
            batch_name=body.get("batchName"),
            metadata=body.get("metadata") or {},
            workflow=workflow.slug,
            params=body["params"],
            copy_results_to=copy_to,
        )
        if injected is not None:
            job.injected_error = JobError(*injected)
        emu.jobs.add(job)
        emu.runner.schedule(job)
        emu.counters.job_created(app_.name)
        return JSONResponse({"id": job.id})

    @api.get(
        "/workflow", response_model=models.WorkflowListOut, responses=_errors(400, 401), tags=["Workflows"]
    )
    async def list_workflows(app_: App, page: Page = 0, size: Size = 100) -> JSONResponse:
        """List workflows, newest first."""
        size = min(size, emu.config.max_page_size)
        selected = emu.workflows.all()[page * size : (page + 1) * size]
        return JSONResponse({"workflows": [w.to_doc() for w in selected]})

    app.include_router(api, prefix="/v1")
    # The legacy prefix (JS SDK 1.0.8, the python SDK's real-service tests, older docs): an alias.
    app.include_router(api, prefix="/api", include_in_schema=False)
    app.include_router(admin_router(emu))
    return app
