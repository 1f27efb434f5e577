"""FastAPI app of the API listener: the public ``/v1`` API plus the admin API (``/__emulator__``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import bodies, models
from .admin import admin_router
from .errors import (
    REASONS,
    BadRequest,
    EmulatorApiError,
    InvalidJobId,
    InvalidParams,
    JobNotFound,
    Unauthorized,
    WorkflowContainsErrors,
    WorkflowNotFound,
    from_status,
)
from .runtime import Emulator
from .state import Application, JobError
from .workflows import ParamError

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_UUID_RE = re.compile(UUID_PATTERN)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": models.ErrorBody, "description": REASONS[code]} for code in codes}


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
        raise Unauthorized()
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

    @app.exception_handler(EmulatorApiError)
    async def _api_error(request: Request, exc: EmulatorApiError) -> JSONResponse:
        """The one place API errors are rendered."""
        return exc.render()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = (
            f"Cannot {request.method} {request.url.path}"
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        return from_status(exc.status_code, message, dict(exc.headers or {})).render()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        error = exc.errors()[0] if exc.errors() else {}
        loc = [str(part) for part in error.get("loc", ())]
        if loc and loc[0] == "path":
            return InvalidJobId().render()
        where = f"{loc[0]} parameter '{loc[1]}'" if len(loc) > 1 else "request"
        return BadRequest(f"Invalid {where}: {error.get('msg', 'invalid value')}.").render()

    api = APIRouter()

    def job_of(app_: Application, job_id: str) -> Any:
        if not _UUID_RE.match(job_id):
            raise InvalidJobId()
        job = emu.jobs.get(app_, job_id.lower())
        if job is None:
            raise JobNotFound()
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
        return JSONResponse(job_of(app_, id).to_doc(emu.clock.now(), emu.config.workflow_shape))

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
            raise JobNotFound()
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
        """List jobs, newest first unless ``job_list_order`` says otherwise (a bare array by default;
        ``{"jobs": [...]}`` when so configured)."""
        jobs = emu.jobs.query(
            app_,
            statuses=[s.value for s in status or ()],
            workflows=workflow or (),
            batch_name=batchName,
            page=page,
            size=min(size, emu.config.max_page_size),
            workflow_shape=emu.config.workflow_shape,
            newest_first=emu.config.job_list_order == "newest_first",
        )
        return JSONResponse(jobs if emu.config.list_shape == "array" else {"jobs": jobs})

    @api.post(
        "/job",
        response_model=models.JobIdOut,
        responses=_errors(400, 401, 404, 422),
        tags=["Jobs"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": bodies.schema(bodies.CREATE_JOB)}},
            }
        },
    )
    async def create_job(app_: App, request: Request) -> JSONResponse:
        """Create a job processed asynchronously by the given workflow."""
        body = bodies.parse(await request.body(), bodies.CREATE_JOB)
        workflow = emu.workflows.get(body["workflow"])
        if workflow is None:
            raise WorkflowNotFound()
        if workflow.errors is not None:
            raise WorkflowContainsErrors(f"The workflow contains errors: {workflow.errors}")
        try:
            workflow.validate_params(body["params"])
        except ParamError as exc:
            raise InvalidParams(str(exc)) from exc
        copy_to = dict(body.get("copyResultsTo") or {})
        unknown = sorted(set(copy_to) - set(workflow.outputs))
        if unknown and emu.config.copy_results_unknown_outputs == "reject":
            raise InvalidParams(
                f"Unknown output '{unknown[0]}' in copyResultsTo for workflow '{workflow.slug}'."
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
            workflow_ref={"id": workflow.id, "name": workflow.name},
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
