"""The admin API (``/__emulator__/...``, no auth, not in the OpenAPI schema) that tests drive."""

from __future__ import annotations

import json
import os
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .catalog import DeclarationError
from .errors import BadRequest, JobNotFound, WorkflowNotFound
from .faults import FaultPlan
from .runtime import Emulator


def _bad(message: str) -> JSONResponse:
    return BadRequest(message).render()


async def _json_object(request: Request) -> dict[str, Any] | JSONResponse:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return _bad("the body must be a JSON object")
    return body if isinstance(body, dict) else _bad("the body must be a JSON object")


def admin_router(emu: Emulator) -> APIRouter:
    """Routes of the admin API for ``emu``."""
    router = APIRouter(prefix="/__emulator__", include_in_schema=False)

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/info")
    async def info() -> dict[str, Any]:
        return {
            "api_url": emu.api_url,
            "storage_url": emu.storage_url,
            "results_url": emu.results_url,
            "ca_path": emu.ca_path,
            "api_keys": {key: app.name for key, app in emu.apps.items()},
            "applications": [{"id": a.id, "name": a.name} for a in emu.apps.values()],
            "storage_dir": str(emu.store.root),
            "pid": os.getpid(),
        }

    @router.post("/reset")
    async def reset(request: Request) -> Any:
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        emu.reset(config=bool(body.get("config", False)), blobs=bool(body.get("blobs", True)))
        return {"status": "reset", "config": emu.config.to_json()}

    @router.get("/config")
    async def get_config() -> dict[str, Any]:
        return emu.config.to_json()

    @router.post("/config")
    async def set_config(request: Request) -> Any:
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            emu.configure(body)
        except ValueError as exc:
            return _bad(str(exc))
        return emu.config.to_json()

    @router.get("/clock")
    async def get_clock() -> dict[str, Any]:
        return {"now": emu.clock.now(), "frozen": emu.clock.frozen}

    @router.post("/clock/advance")
    async def advance_clock(request: Request) -> Any:
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            return _bad("'seconds' must be a number >= 0")
        emu.clock.advance(float(seconds))
        return {"now": emu.clock.now(), "frozen": emu.clock.frozen}

    @router.get("/faults")
    async def get_faults() -> dict[str, Any]:
        return emu.faults.to_json()

    @router.post("/faults")
    async def set_faults(request: Request) -> Any:
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            emu.faults = FaultPlan(body)
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        return emu.faults.to_json()

    @router.delete("/faults")
    async def clear_faults() -> dict[str, Any]:
        emu.faults = FaultPlan()
        return emu.faults.to_json()

    @router.post("/jobs/{job_id}/complete")
    async def complete_job(job_id: str) -> Any:
        job = next((j for j in emu.jobs.all() if j.id == job_id.lower()), None)
        if job is None:
            return JobNotFound().render()
        emu.runner.complete_now(job)
        return {"id": job.id, "status": job.status(emu.clock.now())}

    @router.post("/jobs/history")
    async def add_history(request: Request) -> Any:
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        count, spacing = body.get("count"), body.get("spacing_seconds", 0.001)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 1_000_000:
            return _bad("'count' must be an integer from 0 to 1000000")
        if isinstance(spacing, bool) or not isinstance(spacing, (int, float)) or not spacing > 0:
            return _bad("'spacing_seconds' must be a positive number")
        status = body.get("status", "SUCCEEDED")
        if status not in ("SUCCEEDED", "FAILED"):
            return _bad("'status' must be SUCCEEDED or FAILED")
        app_ = emu.apps.get(body.get("api_key") or next(iter(emu.apps)))
        workflow = emu.workflows.get(body.get("workflow") or "music-ai/stems-vocals-accompaniment")
        if app_ is None or workflow is None:
            return _bad("unknown 'api_key' or 'workflow'")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            return _bad("'metadata' must be an object")
        jobs = emu.jobs.add_history(
            app_,
            count=count,
            status=status,
            spacing=float(spacing),
            name="history",
            batch_name=body.get("batchName"),
            metadata=metadata,
            workflow=workflow.slug,
            workflow_ref={"id": workflow.id, "name": workflow.name},
            params={},
        )
        return {"added": len(jobs)}

    @router.get("/workflows")
    async def list_workflows() -> dict[str, Any]:
        return {"workflows": [w.to_doc() for w in emu.workflows.all()]}

    @router.post("/workflows")
    async def declare_workflow(request: Request) -> Any:
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            return emu.workflows.declare(body, emu.clock.now()).to_doc()
        except DeclarationError as exc:
            return _bad(str(exc))

    @router.delete("/workflows/{slug:path}")
    async def remove_workflow(slug: str) -> Any:
        if not emu.workflows.remove(slug):
            return WorkflowNotFound(f"no declared workflow '{slug}'").render()
        return {"slug": slug}

    @router.get("/input-files")
    async def get_input_files() -> dict[str, Any]:
        return {"files": {url: str(path) for url, path in emu.input_files.items()}}

    @router.post("/input-files")
    async def set_input_files(request: Request) -> Any:
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        files = body.get("files")
        if not isinstance(files, dict):
            return _bad('the body must be {"files": {url: local path}}')
        try:
            emu.set_input_files(files)
        except ValueError as exc:
            return _bad(str(exc))
        return {"files": {url: str(path) for url, path in emu.input_files.items()}}

    @router.get("/counters")
    async def counters() -> dict[str, Any]:
        return emu.counters.snapshot()

    @router.get("/jobs")
    async def jobs() -> dict[str, Any]:
        now = emu.clock.now()
        return {"jobs": [job.to_doc(now) for job in emu.jobs.all()]}

    @router.get("/storage")
    async def storage() -> dict[str, Any]:
        return {
            "objects": emu.store.count(),
            "temp_files": len(os.listdir(emu.store.root / "tmp")),
            "storage_dir": str(emu.store.root),
        }

    return router
